//! The session state machine.
//!
//! `idle → connecting → [authenticating] → open → reconnecting → … →
//! closing → closed`, or `failed`. One [`Session`] streams one audio stream
//! over as many sockets as it takes. It is sans-IO: every input carries
//! `now`, every effect is an [`Output`] to drain.

use std::collections::VecDeque;
use std::time::Duration;

use super::audio::{pcm16_to_le_bytes, Chunker};
use super::backoff::Backoff;
use super::config::{is_token, Config};
use super::error::ConfigError;
use super::error::UsageError;
use super::event::{DropReason, Dropped, ErrorCode, Event, State, StateChange, Stats};
use super::io::{Frame, Input, Output, SocketId};
use super::protocol::{CloseClass, Parsed, Protocol};
use super::queue::{AudioQueue, Chunk, DropTally};
use super::rng::Rng;
use super::time::Instant;
use super::timer::{Timer, TimerTable};
use super::watchdog::Watchdog;

/// Above this many bytes in the socket's send buffer, audio stays in our
/// queue (where it is bounded, counted and replayable) instead of piling up
/// in the browser's buffer, where a dead connection would lose it silently.
const HIGH_WATER: u64 = 64 * 1024;
/// How often to look at the send buffer again while backpressured.
const BACKPRESSURE_POLL: Duration = Duration::from_millis(250);
/// Audio that may be sent at once when a connection becomes ready, before
/// pacing at `replayRate` takes over.
const REPLAY_BURST_MS: f64 = 1000.0;
/// Omi has no finalize message: after the last audio, wait this long for
/// trailing segments before closing.
const LINGER_WITHOUT_FINALIZE: Duration = Duration::from_millis(1500);
/// Omi confirms nothing explicitly: a frame from the server confirms audio
/// sent at least this long before it arrived.
const LIVENESS_CONFIRM_LAG_MS: u64 = 2_000;
/// Close code for connections we judge dead (private range).
pub const CLOSE_STALE: u16 = 4000;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Phase {
    /// Waiting for the open event.
    Connecting,
    /// Open; waiting for the provider's handshake acknowledgement.
    Handshake,
    /// Ready: audio flows.
    Ready,
}

#[derive(Debug)]
struct Socket {
    id: SocketId,
    phase: Phase,
    watchdog: Option<Watchdog>,
    /// Sent `Offline` while this socket was open and heard nothing since.
    offline_unconfirmed: bool,
    /// Audio bytes sent on this socket.
    wire_bytes: u64,
}

#[derive(Debug, Clone, Copy)]
struct Closing {
    deadline: Instant,
    /// Finalize sent (or, without one, the linger started): the next
    /// server close is the normal end.
    finalize_sent: bool,
}

/// Paces replay of a backlog at `replayRate` × real time.
#[derive(Debug, Clone)]
struct Pacer {
    rate: f64,
    credit_ms: f64,
    last: Instant,
}

impl Pacer {
    fn reset(&mut self, now: Instant) {
        self.credit_ms = REPLAY_BURST_MS;
        self.last = now;
    }

    fn refill(&mut self, now: Instant) {
        let elapsed = now.saturating_duration_since(self.last).as_millis() as f64;
        self.credit_ms = (self.credit_ms + elapsed * self.rate).min(REPLAY_BURST_MS);
        self.last = now;
    }

    /// Spends `cost_ms` if available, else says when it will be.
    fn spend(&mut self, now: Instant, cost_ms: f64) -> Result<(), Instant> {
        self.refill(now);
        // Live audio costs one chunk per chunk interval, far below the
        // refill rate; a chunk larger than the burst still goes out once
        // the bucket is full, so pacing can never wedge the queue.
        if self.credit_ms >= cost_ms.min(REPLAY_BURST_MS) {
            self.credit_ms -= cost_ms;
            return Ok(());
        }
        let wait = ((cost_ms.min(REPLAY_BURST_MS) - self.credit_ms) / self.rate)
            .ceil()
            .max(1.0);
        Err(now + Duration::from_millis(wait as u64))
    }
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
    proto: Protocol,
    url: String,
    state: State,
    /// Consecutive failed attempts (the backoff exponent and the budget).
    failures: u32,
    /// Times the session became ready.
    connections: u32,
    socket: Option<Socket>,
    next_socket: u64,
    timers: TimerTable,
    backoff: Backoff,
    queue: AudioQueue,
    chunker: Chunker,
    next_seq: u64,
    next_offset: u64,
    /// Offset just past the last byte sent on the current socket.
    sent_offset: u64,
    acked_offset: u64,
    drops: DropTally,
    out: VecDeque<Output>,
    now: Instant,
    stats: Stats,
    token: Option<String>,
    awaiting_token: bool,
    closing: Option<Closing>,
    pacer: Pacer,
    stream_id: String,
    scratch_parsed: Vec<Parsed>,
}

impl Session {
    /// A session in `idle`, validating the configuration.
    pub fn new(cfg: Config) -> Result<Session, ConfigError> {
        cfg.validate()?;
        if cfg.provider == super::config::Provider::Omi
            && cfg.token.is_none()
            && !cfg.token_callback
        {
            return Err(ConfigError::new(
                "token",
                "undefined",
                "a token or getToken (Omi authenticates with its first message)",
            ));
        }
        let mut rng = Rng::new(cfg.seed);
        let stream_id = format!("rt-{:016x}", rng.next_u64());
        let proto = Protocol::new(cfg.provider);
        Ok(Session {
            url: proto.url(&cfg),
            proto,
            state: State::Idle,
            failures: 0,
            connections: 0,
            socket: None,
            next_socket: 1,
            timers: TimerTable::default(),
            backoff: Backoff::new(cfg.reconnect.clone(), rng.next_u64()),
            queue: AudioQueue::new(
                cfg.ttl,
                cfg.max_bytes,
                cfg.provider == super::config::Provider::Generic,
            ),
            chunker: Chunker::new(cfg.chunk_samples()),
            next_seq: 0,
            next_offset: 0,
            sent_offset: 0,
            acked_offset: 0,
            drops: DropTally::default(),
            out: VecDeque::new(),
            now: Instant::default(),
            stats: Stats::default(),
            token: cfg.token.clone(),
            awaiting_token: false,
            closing: None,
            pacer: Pacer {
                rate: cfg.replay_rate,
                credit_ms: REPLAY_BURST_MS,
                last: Instant::default(),
            },
            stream_id,
            scratch_parsed: Vec::new(),
            cfg,
        })
    }

    /// The current state.
    pub fn state(&self) -> State {
        self.state
    }

    /// The configuration in force.
    pub fn config(&self) -> &Config {
        &self.cfg
    }

    /// Counters; see [`Stats`] for the conservation law they obey.
    /// The value returned may change after any `handle_input`.
    pub fn stats(&self) -> Stats {
        let mut s = self.stats.clone();
        let partial = self.chunker.pending() as u64 * 2;
        s.bytes_queued = self.queue.unsent_bytes() + partial;
        s.chunks_queued = self.queue.unsent_chunks() + u64::from(partial > 0);
        s.audio_ms_queued = s.bytes_queued as f64 / self.cfg.bytes_per_ms();
        s
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
        self.out
            .pop_front()
            .unwrap_or(Output::Timeout(self.timers.next()))
    }

    /// Feeds one input that happened at `now`. A `now` earlier than a
    /// previous one is treated as the previous one (clocks step back).
    ///
    /// `Err` means misuse (see [`UsageError`]) and changes nothing. Lost
    /// connections are never errors: they are events.
    pub fn handle_input(&mut self, now: Instant, input: Input<'_>) -> Result<(), UsageError> {
        let now = now.max(self.now);
        self.now = now;
        // Liveness first, against wall-clock now, on EVERY input: the first
        // event after a sleep must see the sleep before anything else.
        self.check_liveness(now);
        match input {
            Input::Connect => self.handle_connect(now)?,
            Input::Audio(samples) => self.handle_audio(now, samples),
            Input::SocketOpened(id) => self.handle_opened(now, id),
            Input::SocketText(id, text) => self.handle_text(now, id, text),
            Input::SocketBinary(id, data) => self.handle_binary(now, id, data),
            Input::SocketClosed { id, code, reason } => self.handle_closed(now, id, code, reason),
            Input::SocketError(_) => {
                // Browsers follow an error with a close event, which decides;
                // if none comes, the connect timeout or the watchdog does.
            }
            Input::BufferedAmount(id, bytes) => {
                if let Some(w) = self.current_mut(id).and_then(|s| s.watchdog.as_mut()) {
                    w.on_buffered(now, bytes);
                    self.stats.buffered_amount = bytes;
                }
            }
            Input::Online => self.handle_online(now),
            Input::Offline => {
                if let Some(s) = self.socket.as_mut().filter(|s| s.phase == Phase::Ready) {
                    s.offline_unconfirmed = true;
                }
            }
            Input::PageHidden | Input::PageResumed => {}
            Input::Token(result) => self.handle_token(now, result)?,
            Input::Timeout => self.handle_timeout(now),
            Input::Close { flush, timeout } => self.handle_close(now, flush, timeout),
        }
        self.after_input(now);
        Ok(())
    }

    // --- inputs -----------------------------------------------------------

    fn handle_connect(&mut self, now: Instant) -> Result<(), UsageError> {
        match self.state {
            State::Idle => {
                self.start_attempt(now);
                Ok(())
            }
            s if s.is_terminal() || s == State::Closing => Err(UsageError::Closed),
            _ => Err(UsageError::AlreadyConnected),
        }
    }

    fn handle_audio(&mut self, now: Instant, samples: &[i16]) {
        let bytes = samples.len() as u64 * 2;
        self.stats.bytes_pushed += bytes;
        if self.state.is_terminal() || self.state == State::Closing {
            // Close is terminal: later audio is reported, never lost silently.
            let reason = if self.state == State::Failed {
                DropReason::Failed
            } else {
                DropReason::Closed
            };
            let per = self.cfg.chunk_samples();
            for piece in samples.chunks(per) {
                self.drops.add(reason, piece.len() as u64 * 2);
            }
            return;
        }
        // Full chunks, straight to little-endian bytes (the chunker's
        // callback cannot borrow the queue).
        let mut full = Vec::new();
        self.chunker.push(samples, |c| full.push(le_bytes(c)));
        for data in full {
            self.enqueue(now, data);
        }
    }

    fn enqueue(&mut self, now: Instant, data: Vec<u8>) {
        let len = data.len() as u64;
        let chunk = Chunk {
            seq: self.next_seq,
            offset: self.next_offset,
            captured: now,
            data,
            resend: false,
            waited: !self.is_ready(),
            wire_end: 0,
            sent_at: now,
        };
        self.next_seq += 1;
        self.next_offset += len;
        self.stats.chunks_pushed += 1;
        // Expire before making room: a chunk whose TTL ends now is a `ttl`
        // drop, not a `capacity` one. With the defaults (30 s TTL, maxBytes
        // = 30 s at 16 kHz) both bounds are reached at the same instant, and
        // every outage drop used to be mislabelled `capacity`.
        let recount = self.queue.expire(now, &mut self.drops);
        self.recount_sent(recount);
        let recount = self.queue.push(chunk, &mut self.drops);
        self.recount_sent(recount);
    }

    fn handle_opened(&mut self, now: Instant, id: SocketId) {
        let Some(sock) = self.current_mut(id) else {
            return;
        };
        if sock.phase != Phase::Connecting {
            return;
        }
        let resume = self
            .queue
            .front()
            .map(|c| c.offset)
            .unwrap_or(self.next_offset);
        if let Some(frame) = self
            .proto
            .first_frame(self.token.as_deref(), &self.stream_id, resume)
        {
            self.sent_offset = resume;
            self.send(id, frame);
        }
        if self.proto.has_handshake() {
            if let Some(s) = self.socket.as_mut() {
                s.phase = Phase::Handshake;
            }
            if self.state != State::Closing {
                self.set_state(State::Authenticating, None, None);
            }
        } else {
            self.became_ready(now, resume);
        }
    }

    fn became_ready(&mut self, now: Instant, resume: u64) {
        let cfg = &self.cfg;
        let watchdog = Watchdog::new(
            now,
            self.proto.expectation(),
            cfg.stale_after,
            cfg.stall_after,
            cfg.keepalive_interval,
        );
        let Some(sock) = self.socket.as_mut() else {
            return;
        };
        sock.phase = Phase::Ready;
        sock.watchdog = Some(watchdog);
        self.timers.clear(Timer::Connect);
        self.timers
            .set(Timer::ResetAttempts, now + self.cfg.reconnect.reset_after);
        self.connections += 1;
        if self.connections > 1 {
            self.stats.reconnects += 1;
        }
        self.pacer.reset(now);
        if self.state != State::Closing {
            self.set_state(State::Open, None, None);
        }
        self.emit(Event::Open {
            connection: self.connections,
            backlog_chunks: self.queue.pending_len() as u32,
            resume_offset: self.proto.acks().then_some(resume),
        });
    }

    fn handle_text(&mut self, now: Instant, id: SocketId, text: &str) {
        if !self.on_frame(now, id) {
            return;
        }
        let mut parsed = std::mem::take(&mut self.scratch_parsed);
        self.proto.parse_text(text, &mut parsed);
        let mut message_sent = false;
        for p in parsed.drain(..) {
            self.apply(now, id, p, text, &mut message_sent);
        }
        self.scratch_parsed = parsed;
    }

    fn handle_binary(&mut self, now: Instant, id: SocketId, data: &[u8]) {
        if !self.on_frame(now, id) {
            return;
        }
        let p = self.proto.parse_binary(data);
        let mut message_sent = true; // no text to put in a message event
        self.apply(now, id, p, "", &mut message_sent);
    }

    /// Bookkeeping common to every frame; false for stale sockets.
    fn on_frame(&mut self, now: Instant, id: SocketId) -> bool {
        if self.current_mut(id).is_some() && self.proto.confirms_by_liveness() {
            // A frame from the server proves the connection carried what we
            // sent well before it (TCP delivers in order); only the last
            // moments before it stay unconfirmed.
            let before =
                Instant::from_millis(now.as_millis().saturating_sub(LIVENESS_CONFIRM_LAG_MS));
            let acked = self.queue.ack_sent_before(before);
            self.count_acked(acked);
        }
        let Some(sock) = self.current_mut(id) else {
            return false;
        };
        sock.offline_unconfirmed = false;
        if let Some(w) = sock.watchdog.as_mut() {
            w.on_rx(now);
        }
        self.stats.messages_received += 1;
        true
    }

    fn apply(
        &mut self,
        now: Instant,
        id: SocketId,
        p: Parsed,
        text: &str,
        message_sent: &mut bool,
    ) {
        let mut message = |s: &mut Session| {
            if !*message_sent {
                *message_sent = true;
                s.emit(Event::Message(text.to_string()));
            }
        };
        match p {
            Parsed::Transcript(t) => {
                self.stats.transcripts += 1;
                self.emit(Event::Transcript(t));
            }
            Parsed::Ready => {
                if self
                    .socket
                    .as_ref()
                    .is_some_and(|s| s.phase == Phase::Handshake)
                {
                    let resume = self.sent_offset;
                    self.became_ready(now, resume);
                }
            }
            Parsed::AuthRejected(why) => {
                message(self);
                self.close_socket(id, 1000, "authentication rejected");
                self.fail(
                    ErrorCode::AuthFailed,
                    format!("the server rejected the credentials: {why}"),
                    None,
                );
            }
            Parsed::Resumed(offset) => {
                // The server's high-water mark for this stream: an ack for
                // everything below it, and the verdict on audio we had to
                // let go of unconfirmed before the last connection died.
                self.apply(now, id, Parsed::Ack(offset), text, message_sent);
                let unsent = self.queue.settle_evicted(&mut self.drops);
                self.uncount_sent(unsent);
            }
            Parsed::Processed(secs) => {
                // Deepgram timestamps count this socket's audio from zero.
                let samples = (secs * f64::from(self.cfg.sample_rate)).round().max(0.0) as u64;
                let acked = self.queue.ack_wire(samples * 2);
                self.count_acked(acked);
            }
            Parsed::Ack(offset) => {
                if offset > self.acked_offset {
                    self.acked_offset = offset;
                    let acked = self.queue.ack(offset);
                    self.count_acked(acked);
                }
            }
            Parsed::Heartbeat => {}
            Parsed::Finished => {
                if self.closing.is_some() {
                    self.confirm_all();
                    self.close_socket(id, 1000, "finished");
                    self.finish(Some(1000), "finished".into());
                }
            }
            Parsed::Message => message(self),
            Parsed::ServerError(m) => {
                message(self);
                self.emit_error(ErrorCode::ServerError, format!("server error: {m}"), false);
            }
            Parsed::Malformed(m) => {
                message(self);
                self.emit_error(
                    ErrorCode::MalformedMessage,
                    format!("could not understand a server message: {m}"),
                    false,
                );
            }
        }
    }

    fn handle_closed(&mut self, now: Instant, id: SocketId, code: u16, reason: &str) {
        if self.current_mut(id).is_none() {
            return;
        }
        self.socket = None;
        let finishing = self.closing.is_some_and(|c| c.finalize_sent);
        let described = describe_close(code, reason);
        match self.proto.classify_close(code, reason, finishing) {
            CloseClass::Finished => {
                // A normal close after our finalize: the server has it all.
                // Any other close (1006 after CloseStream) confirms nothing,
                // and `finish` reports what stayed unconfirmed.
                if code == 1000 {
                    self.confirm_all();
                }
                self.finish(Some(code), non_empty(reason, "finished"));
            }
            CloseClass::Fatal(err) => self.fail(
                err,
                format!("the server closed the connection: {described}"),
                Some(code),
            ),
            CloseClass::Retry => self.connection_lost(now, described, false),
        }
    }

    fn handle_online(&mut self, now: Instant) {
        if self.timers.get(Timer::Reconnect).is_some() {
            // The browser says the network is back: retry at once instead
            // of sitting out the backoff.
            self.timers.clear(Timer::Reconnect);
            self.start_attempt(now);
            return;
        }
        let suspect = self.socket.as_ref().is_some_and(|s| s.offline_unconfirmed);
        if suspect {
            // We went offline while open and heard nothing since: the
            // network changed under the socket, which rarely survives it.
            if let Some(id) = self.socket.as_ref().map(|s| s.id) {
                self.close_socket(id, CLOSE_STALE, "network changed");
            }
            self.connection_lost(now, "network changed while offline".into(), true);
        }
    }

    fn handle_token(
        &mut self,
        now: Instant,
        result: Result<String, String>,
    ) -> Result<(), UsageError> {
        if !self.awaiting_token {
            // A late answer to an attempt that already timed out, or a
            // caller bug: either way nothing to do with it.
            return Err(UsageError::UnexpectedToken);
        }
        self.awaiting_token = false;
        match result {
            Ok(t) if self.token_usable(&t) => {
                self.token = Some(t);
                self.open_socket();
            }
            Ok(_) => {
                self.emit_error(
                    ErrorCode::TokenFailed,
                    "getToken returned an empty or malformed token".into(),
                    false,
                );
                self.timers.clear(Timer::Connect);
                self.connection_lost(now, "getToken returned an unusable token".into(), false);
            }
            Err(why) => {
                self.emit_error(
                    ErrorCode::TokenFailed,
                    format!("getToken failed: {why}"),
                    false,
                );
                self.timers.clear(Timer::Connect);
                self.connection_lost(now, "getToken failed".into(), false);
            }
        }
        Ok(())
    }

    fn token_usable(&self, t: &str) -> bool {
        match self.cfg.provider {
            // Carried in a subprotocol: must be a header token.
            super::config::Provider::Deepgram | super::config::Provider::Generic => is_token(t),
            super::config::Provider::Omi => !t.is_empty(),
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
            }
            if self.state.is_terminal() {
                return;
            }
        }
    }

    fn handle_close(&mut self, now: Instant, flush: bool, timeout: Option<Duration>) {
        match self.state {
            State::Closed | State::Failed => {}
            State::Closing => {
                if !flush {
                    self.close_now("client closed");
                }
            }
            State::Idle => {
                self.finish(None, "closed before connecting".into());
            }
            _ if !flush => self.close_now("client closed"),
            _ => {
                if let Some(partial) = self.chunker.take_partial() {
                    self.enqueue(now, le_bytes(&partial));
                }
                let deadline = now + timeout.unwrap_or(self.cfg.close_timeout);
                self.closing = Some(Closing {
                    deadline,
                    finalize_sent: false,
                });
                self.timers.set(Timer::CloseDeadline, deadline);
                self.timers.clear(Timer::ResetAttempts);
                self.set_state(State::Closing, Some("close requested".into()), None);
                // No socket while `getToken` runs is an attempt in progress,
                // not a lost connection: starting another would call
                // `getToken` twice and reject the first token's answer.
                if self.socket.is_none() && !self.awaiting_token {
                    self.timers.clear(Timer::Reconnect);
                    if self.queue.pending_len() == 0 {
                        self.finish(None, "closed".into());
                    } else {
                        // Try once more right away to deliver the backlog.
                        self.start_attempt(now);
                    }
                }
            }
        }
    }

    // --- transitions ------------------------------------------------------

    fn start_attempt(&mut self, now: Instant) {
        self.stats.attempts += 1;
        self.timers
            .set(Timer::Connect, now + self.cfg.connect_timeout);
        if self.state != State::Closing {
            self.set_state(State::Connecting, None, None);
        }
        if self.cfg.token_callback {
            self.awaiting_token = true;
            self.out.push_back(Output::RequestToken);
        } else {
            self.open_socket();
        }
    }

    fn open_socket(&mut self) {
        let id = SocketId(self.next_socket);
        self.next_socket += 1;
        self.socket = Some(Socket {
            id,
            phase: Phase::Connecting,
            watchdog: None,
            offline_unconfirmed: false,
            wire_bytes: 0,
        });
        let protocols = self.proto.protocols(&self.cfg, self.token.as_deref());
        self.out.push_back(Output::Open {
            id,
            url: self.url.clone(),
            protocols,
        });
    }

    fn attempt_timed_out(&mut self, now: Instant) {
        self.awaiting_token = false;
        if let Some(id) = self.socket.as_ref().map(|s| s.id) {
            self.close_socket(id, CLOSE_STALE, "connect timeout");
        }
        let secs = self.cfg.connect_timeout.as_millis();
        self.emit_error(
            ErrorCode::ConnectTimeout,
            format!("the connection was not ready within {secs} ms"),
            false,
        );
        self.connection_lost(now, format!("not ready within {secs} ms"), false);
    }

    /// The socket is gone (already closed or forgotten): count the failure
    /// and schedule the next attempt, or give up when the budget is spent.
    fn connection_lost(&mut self, now: Instant, reason: String, immediate: bool) {
        self.socket = None;
        self.timers.clear(Timer::Connect);
        self.timers.clear(Timer::ResetAttempts);
        self.timers.clear(Timer::Pace);
        let unsent = self.queue.rewind();
        self.uncount_sent(unsent);
        if !self.proto.acks() {
            // No `started` offset will come to settle what the queue let go
            // of unconfirmed: it is lost, and said so.
            let lost = self.queue.settle_evicted(&mut self.drops);
            self.uncount_sent(lost);
        }
        if let Some(closing) = self.closing.as_mut() {
            // A flushing close lost its socket after the finalize went out:
            // the next socket must resend the unconfirmed audio and finalize
            // again, within the user's deadline (not the linger's).
            closing.finalize_sent = false;
            self.timers.set(Timer::CloseDeadline, closing.deadline);
        }
        // Every close counts, including closes after open: a server that
        // accepts and drops at once must not get a retry storm.
        self.failures = self.failures.saturating_add(1);
        if let Some(max) = self.cfg.reconnect.max_attempts {
            if self.failures >= max {
                let msg = format!(
                    "gave up after {} consecutive failed attempts (last: {reason})",
                    self.failures
                );
                self.fail(ErrorCode::MaxAttempts, msg, None);
                return;
            }
        }
        if self.closing.is_some() && self.queue.pending_len() == 0 {
            self.finish(None, reason);
            return;
        }
        let delay = if immediate {
            Duration::ZERO
        } else {
            self.backoff.delay(self.failures)
        };
        if self.state != State::Closing {
            self.set_state(State::Reconnecting, Some(reason), Some(delay));
        }
        self.emit(Event::Reconnecting {
            attempt: self.failures,
            delay,
        });
        if immediate {
            self.start_attempt(now);
        } else {
            self.timers.set(Timer::Reconnect, now + delay);
        }
    }

    fn check_liveness(&mut self, now: Instant) {
        // After finalize no keepalive timer runs, so a long close timeout is
        // not a sign of a suspended page.
        let timers_run = !self.closing.is_some_and(|c| c.finalize_sent);
        let Some(sock) = self.socket.as_mut() else {
            return;
        };
        let Some(w) = sock.watchdog.as_mut() else {
            return;
        };
        if let Some(stale) = w.check(now, timers_run) {
            let id = sock.id;
            self.close_socket(id, CLOSE_STALE, "stale");
            self.connection_lost(now, stale.describe(), false);
        }
    }

    fn close_deadline(&mut self) {
        let clean = self.queue.pending_len() == 0 && self.chunker.pending() == 0;
        let reason = if clean && self.closing.is_some_and(|c| c.finalize_sent) {
            if self.proto.finalize().is_none() {
                // The linger of a provider without a finalize message ended
                // on a live socket: the close frame follows the audio in
                // order, so the server has it all.
                self.confirm_all();
            }
            "closed"
        } else {
            "close timeout"
        };
        self.close_now(reason);
    }

    /// Ends at once: closes the socket with 1000 and drops what is unsent.
    fn close_now(&mut self, reason: &str) {
        if let Some(id) = self.socket.as_ref().map(|s| s.id) {
            self.close_socket(id, 1000, reason);
            self.finish(Some(1000), reason.into());
        } else {
            self.finish(None, reason.into());
        }
    }

    /// Enters `closed`. Whatever was not sent is reported dropped.
    fn finish(&mut self, code: Option<u16>, reason: String) {
        self.drop_everything(DropReason::Closed);
        self.terminate(State::Closed, code, reason);
    }

    /// Enters `failed` with a fatal error event.
    fn fail(&mut self, code: ErrorCode, message: String, close_code: Option<u16>) {
        if let Some(id) = self.socket.as_ref().map(|s| s.id) {
            self.close_socket(id, 1000, "fatal error");
        }
        self.drop_everything(DropReason::Failed);
        self.emit_error(code, message.clone(), true);
        self.terminate(State::Failed, close_code, message);
    }

    fn terminate(&mut self, state: State, code: Option<u16>, reason: String) {
        // `closed` is the last event: what `finish`/`fail` just dropped is
        // reported before it, not after (a listener that unsubscribes on
        // `closed` would never learn that audio was lost).
        self.report_drops();
        self.socket = None;
        self.awaiting_token = false;
        self.closing = None;
        self.timers.clear_all();
        self.set_state(state, Some(reason.clone()), None);
        self.emit(Event::Closed { code, reason });
    }

    fn drop_everything(&mut self, reason: DropReason) {
        if let Some(partial) = self.chunker.take_partial() {
            self.drops.add(reason, partial.len() as u64 * 2);
        }
        let unsent = self.queue.drain_all(reason, &mut self.drops);
        self.uncount_sent(unsent);
    }

    /// Sent bytes the server never confirmed went back to the queue or
    /// into a drop report: they are no longer "sent" (so the conservation
    /// law holds and nothing unconfirmed is lost silently).
    fn uncount_sent(&mut self, unsent: super::queue::Unsent) {
        self.stats.bytes_sent -= unsent.bytes;
        self.stats.chunks_sent -= unsent.chunks;
    }

    /// A normal end of stream confirms everything that was sent.
    fn confirm_all(&mut self) {
        let acked = self.queue.ack_all();
        self.count_acked(acked);
    }

    fn count_acked(&mut self, acked: super::queue::Acked) {
        self.stats.bytes_acked += acked.bytes;
        // Resends waiting in the queue that the server already had: queued
        // again at the rewind, now sent for good.
        self.stats.bytes_sent += acked.requeued_bytes;
        self.stats.chunks_sent += acked.requeued_chunks;
    }

    /// Waiting resends the queue let go of count as sent again until the
    /// server's `started` offset settles whether it has them.
    fn recount_sent(&mut self, moved: super::queue::Unsent) {
        self.stats.bytes_sent += moved.bytes;
        self.stats.chunks_sent += moved.chunks;
    }

    // --- sending ----------------------------------------------------------

    /// Runs after every input: expiry, sending, keepalive, events, timers.
    fn after_input(&mut self, now: Instant) {
        if !self.state.is_terminal() {
            let recount = self.queue.expire(now, &mut self.drops);
            self.recount_sent(recount);
            self.pump(now);
            self.keepalive(now);
        }
        self.report_drops();
        // Once the finalize frame is out, `keepalive` sends nothing more, so
        // a keepalive deadline would stay due (in the past) and the caller
        // would be woken at `now` in a loop until the close deadline: only
        // the liveness deadlines count then.
        let finalizing = self.closing.is_some_and(|c| c.finalize_sent);
        let (watchdog, pace_ok) = match self.socket.as_ref() {
            Some(s) => (
                s.watchdog.as_ref().and_then(|w| {
                    if finalizing {
                        w.liveness_deadline()
                    } else {
                        Some(w.next_deadline())
                    }
                }),
                true,
            ),
            None => (None, false),
        };
        self.timers.set_opt(Timer::Watchdog, watchdog);
        if !pace_ok {
            self.timers.clear(Timer::Pace);
        }
        let expiry = if self.state.is_terminal() {
            None
        } else {
            self.queue.next_expiry()
        };
        self.timers.set_opt(Timer::Expiry, expiry);
    }

    fn pump(&mut self, now: Instant) {
        let Some(id) = self.ready_id() else { return };
        if self.closing.is_some_and(|c| c.finalize_sent) {
            return;
        }
        let bytes_per_ms = self.cfg.bytes_per_ms();
        let buffered = self
            .socket
            .as_ref()
            .and_then(|s| s.watchdog.as_ref())
            .map_or(0, Watchdog::buffered);
        let mut sent_audio = false;
        while let Some(front) = self.queue.front() {
            if buffered > HIGH_WATER {
                self.timers.set(Timer::Pace, now + BACKPRESSURE_POLL);
                break;
            }
            let cost = front.data.len() as f64 / bytes_per_ms;
            if let Err(at) = self.pacer.spend(now, cost) {
                self.timers.set(Timer::Pace, at);
                break;
            }
            let mut chunk = self.queue.pop_front().expect("front exists");
            if chunk.offset != self.sent_offset {
                if let Some(seek) = self.proto.seek(chunk.offset) {
                    self.send(id, seek);
                }
            }
            self.sent_offset = chunk.end();
            let len = chunk.data.len() as u64;
            self.stats.bytes_sent += len;
            self.stats.chunks_sent += 1;
            if chunk.resend {
                self.stats.bytes_resent += len;
            } else if chunk.waited {
                self.stats.chunks_replayed += 1;
            }
            // Every provider keeps sent audio until the server confirms it
            // (generic acks, Deepgram results, Omi liveness): audio in
            // flight when a connection dies is resent, not lost silently.
            if let Some(sock) = self.socket.as_mut() {
                sock.wire_bytes += len;
                chunk.wire_end = sock.wire_bytes;
            }
            chunk.sent_at = now;
            self.out
                .push_back(Output::Send(id, Frame::Binary(chunk.data.clone())));
            self.queue.keep_unacked(chunk);
            sent_audio = true;
        }
        if sent_audio {
            if let Some(w) = self.socket.as_mut().and_then(|s| s.watchdog.as_mut()) {
                w.on_audio_sent(now);
            }
        }
        if self.queue.pending_len() == 0 && self.closing.is_some() {
            self.finalize(now, id);
        }
    }

    fn finalize(&mut self, now: Instant, id: SocketId) {
        let Some(closing) = self.closing.as_mut() else {
            return;
        };
        closing.finalize_sent = true;
        match self.proto.finalize() {
            Some(frame) => self.send(id, frame),
            None => {
                // The user's deadline stays in `closing.deadline`, in case
                // the socket dies during the linger and a new one is needed.
                let until = closing.deadline.min(now + LINGER_WITHOUT_FINALIZE);
                self.timers.set(Timer::CloseDeadline, until);
            }
        }
    }

    fn keepalive(&mut self, now: Instant) {
        if self.closing.is_some_and(|c| c.finalize_sent) {
            return;
        }
        let Some(id) = self.ready_id() else { return };
        let due = self
            .socket
            .as_ref()
            .and_then(|s| s.watchdog.as_ref())
            .is_some_and(|w| w.keepalive_due(now));
        if due {
            self.stats.keepalives_sent += 1;
            self.send(id, self.proto.keepalive());
        }
    }

    fn send(&mut self, id: SocketId, frame: Frame) {
        let now = self.now;
        if let Some(w) = self.current_mut(id).and_then(|s| s.watchdog.as_mut()) {
            w.on_other_sent(now);
        }
        self.out.push_back(Output::Send(id, frame));
    }

    fn close_socket(&mut self, id: SocketId, code: u16, reason: &str) {
        if self.current_mut(id).is_some() {
            self.socket = None;
            self.out.push_back(Output::Close {
                id,
                code,
                reason: reason.to_string(),
            });
        }
    }

    // --- events -------------------------------------------------------------

    fn set_state(&mut self, state: State, reason: Option<String>, retry_in: Option<Duration>) {
        if state == self.state && state != State::Reconnecting {
            return;
        }
        let previous = std::mem::replace(&mut self.state, state);
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
        for (reason, chunks, bytes) in self.drops.take() {
            let audio_ms = bytes as f64 / self.cfg.bytes_per_ms();
            self.stats.bytes_dropped += bytes;
            self.stats.chunks_dropped += u64::from(chunks);
            self.stats.audio_ms_dropped += audio_ms;
            self.emit(Event::Dropped(Dropped {
                chunks,
                bytes,
                audio_ms,
                reason,
            }));
        }
    }

    // --- helpers ------------------------------------------------------------

    fn current_mut(&mut self, id: SocketId) -> Option<&mut Socket> {
        self.socket.as_mut().filter(|s| s.id == id)
    }

    fn ready_id(&self) -> Option<SocketId> {
        self.socket
            .as_ref()
            .filter(|s| s.phase == Phase::Ready)
            .map(|s| s.id)
    }

    fn is_ready(&self) -> bool {
        self.ready_id().is_some()
    }
}

fn le_bytes(pcm: &[i16]) -> Vec<u8> {
    let mut data = Vec::with_capacity(pcm.len() * 2);
    pcm16_to_le_bytes(pcm, &mut data);
    data
}

fn describe_close(code: u16, reason: &str) -> String {
    if reason.is_empty() {
        format!("close {code}")
    } else {
        format!("close {code} \"{reason}\"")
    }
}

fn non_empty(s: &str, default: &str) -> String {
    if s.is_empty() {
        default.to_string()
    } else {
        s.to_string()
    }
}
