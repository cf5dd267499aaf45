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
use super::io::{Credential, Frame, Input, Output, SocketId, TokenRequest};
use super::protocol::{CloseClass, Parsed, Protocol};
use super::queue::{AudioQueue, Chunk, DropTally};
use super::rng::Rng;
use super::time::Instant;
use super::timer::{Timer, TimerTable};
use super::watchdog::{Stale, Watchdog};

/// Above this many bytes in the socket's send buffer, audio stays in our
/// queue (where it is bounded, counted and replayable) instead of piling up
/// in the browser's buffer, where a dead connection would lose it silently.
const HIGH_WATER: u64 = 64 * 1024;
/// How often to look at the send buffer again while backpressured.
const BACKPRESSURE_POLL: Duration = Duration::from_millis(250);
/// Audio that may be sent at once when a connection becomes ready, before
/// pacing at `replayRate` takes over.
const REPLAY_BURST_MS: f64 = 1000.0;
/// Omi has no finalize message: after the last audio, wait at most this
/// long for the segments that confirm it before closing (what stays
/// unconfirmed is reported, never assumed delivered).
const LINGER_WITHOUT_FINALIZE: Duration = Duration::from_millis(1500);
/// Close code for connections we judge dead (private range).
pub const CLOSE_STALE: u16 = 4000;
/// How long a connection that may not have survived a freeze, a sleep or
/// an offline spell has to prove it is alive before it is replaced: one
/// ack or result interval of the servers we speak to, with room to spare.
/// A dead one is replaced, and its unconfirmed tail resent, within this
/// plus one handshake of the resume.
const PROOF_OF_LIFE: Duration = Duration::from_secs(2);

/// A ready connection whose liveness is in doubt.
#[derive(Debug, Clone, Copy)]
struct Probation {
    /// Audio bytes sent on the socket when the doubt began: a result or
    /// an ack covering audio beyond them proves the server reads what we
    /// send now (frames it sent before it died may still arrive).
    wire_mark: u64,
    /// Stream offset sent when the doubt began (generic acks).
    offset_mark: u64,
    /// Why, for the state event if it is replaced.
    reason: &'static str,
}

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
    /// Liveness in doubt since a freeze, a sleep or an offline spell.
    probation: Option<Probation>,
    /// Audio bytes sent on this socket.
    wire_bytes: u64,
    /// Bytes of every frame handed to the caller for this socket (audio,
    /// keepalives, control): what `bufferedAmount` is measured against.
    handed: u64,
    /// Where this socket's audio sits in the stream: `(wire, offset)` pairs,
    /// one per contiguous run, so the socket's own clock (Deepgram and Omi
    /// count from zero on every socket) maps back to stream time.
    runs: Vec<(u64, u64)>,
    /// Stream offset just past the last audio byte sent on this socket.
    run_end: u64,
}

impl Socket {
    fn new(id: SocketId) -> Socket {
        Socket {
            id,
            phase: Phase::Connecting,
            watchdog: None,
            probation: None,
            wire_bytes: 0,
            handed: 0,
            runs: Vec::new(),
            run_end: 0,
        }
    }

    /// Records that `len` audio bytes at stream `offset` go out now.
    fn note_audio(&mut self, offset: u64, len: u64) -> u64 {
        if self.runs.is_empty() || offset != self.run_end {
            self.runs.push((self.wire_bytes, offset));
        }
        self.run_end = offset + len;
        self.wire_bytes += len;
        self.wire_bytes
    }

    /// The stream byte position of this socket's audio byte `wire`.
    fn stream_pos(&self, wire: f64) -> f64 {
        let run = self
            .runs
            .iter()
            .rev()
            .find(|(w, _)| (*w as f64) <= wire)
            .or(self.runs.first());
        match run {
            Some(&(w, off)) => off as f64 + (wire - w as f64),
            None => wire,
        }
    }
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
    token: Option<Credential>,
    /// The token request in flight, if any; answers to others are stale.
    awaiting_token: Option<TokenRequest>,
    next_token_request: u64,
    closing: Option<Closing>,
    pacer: Pacer,
    /// The browser reports no network: audio waits in the queue.
    offline: bool,
    /// A `freeze` (or `pagehide`) was seen and no resume yet.
    frozen: bool,
    /// Stream seconds up to which final transcripts were emitted, per
    /// channel: a later connection's finals for that stretch (resent audio
    /// the old server had after all) are not shown twice.
    finalized: Vec<f64>,
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
            queue: AudioQueue::new(cfg.ttl, cfg.max_bytes),
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
            awaiting_token: None,
            next_token_request: 1,
            closing: None,
            pacer: Pacer {
                rate: cfg.replay_rate,
                credit_ms: REPLAY_BURST_MS,
                last: Instant::default(),
            },
            offline: false,
            frozen: false,
            finalized: Vec::new(),
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
        let Some(o) = self.out.pop_front() else {
            // A deadline that passed while the page did not run (a freeze)
            // is due now, not in the past: the caller wakes at once.
            return Output::Timeout(self.timers.next().map(|t| t.max(self.now)));
        };
        if let Output::Send(id, frame) = &o {
            // What the caller hands to the socket from here on: the
            // baseline `bufferedAmount` samples are compared against.
            if let Some(sock) = self.current_mut(*id) {
                sock.handed += frame.len() as u64;
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
            if let Some(sock) = self.current_mut(id) {
                let handed = sock.handed;
                if let Some(w) = sock.watchdog.as_mut() {
                    w.on_buffered(now, bytes, handed);
                    self.stats.buffered_amount = bytes;
                }
            }
        }
        // Liveness first, against `now`, on EVERY input: the first event
        // after a frozen tab must see the freeze before anything else.
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
            Input::BufferedAmount(..) => {}
            Input::Online => self.handle_online(now),
            Input::Offline => self.handle_offline(),
            Input::PageHidden => {}
            Input::PageFrozen => self.frozen = true,
            Input::PageResumed => {
                if std::mem::take(&mut self.frozen) {
                    self.start_probation(now, "page resumed after a freeze");
                }
            }
            Input::Slept(_) => self.start_probation(now, "machine woke from sleep"),
            Input::AudioLost(samples) => {
                let bytes = samples * 2;
                self.stats.bytes_pushed += bytes;
                self.drops.add(DropReason::Format, bytes);
            }
            Input::Token(req, result) => self.handle_token(now, req, result)?,
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
        };
        self.next_seq += 1;
        self.next_offset += len;
        self.stats.chunks_pushed += 1;
        // Expire before making room: a chunk whose TTL ends now is a `ttl`
        // drop, not a `capacity` one. With the defaults (30 s TTL, maxBytes
        // = 30 s at 16 kHz) both bounds are reached at the same instant, and
        // every outage drop used to be mislabelled `capacity`.
        self.queue.expire(now, &mut self.drops);
        self.queue.push(chunk, &mut self.drops);
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
        let token = self.token.as_ref().map(|c| c.token.as_str());
        // Finals are kept per channel; the earliest point any channel has.
        let finalized = self
            .finalized
            .iter()
            .copied()
            .reduce(f64::min)
            .unwrap_or(0.0);
        let final_from_ms = (finalized * 1000.0).max(0.0) as u64;
        if let Some(frame) = self
            .proto
            .first_frame(token, &self.stream_id, resume, final_from_ms)
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
            cfg.keepalive_interval(),
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
        // A connection that works says more than the browser's flag.
        self.offline = false;
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
        let Some(sock) = self.current_mut(id) else {
            return false;
        };
        if let Some(w) = sock.watchdog.as_mut() {
            w.on_rx(now);
        }
        self.stats.messages_received += 1;
        self.prove_alive(id, None, None);
        true
    }

    /// Seconds of stream time for `socket_secs` of the current socket's
    /// audio (Deepgram and Omi count each socket's audio from zero).
    fn stream_secs(&self, socket_secs: f64) -> f64 {
        let bytes_per_sec = self.cfg.bytes_per_ms() * 1000.0;
        match self.socket.as_ref() {
            Some(s) => s.stream_pos(socket_secs * bytes_per_sec) / bytes_per_sec,
            None => socket_secs,
        }
    }

    /// Keeps each stretch of the stream in at most one final transcript.
    /// Audio in flight when a connection died is resent, and sometimes the
    /// old server had it after all and its finals arrived: the new
    /// server's finals for that stretch would show the words twice. With
    /// times on the stream's timeline, a result that covers only time that
    /// already has finals is not emitted; a final that overlaps it loses
    /// the words that start before that point (without word timings it is
    /// emitted whole: see docs/reliability.md).
    fn dedupe(&mut self, mut t: super::event::Transcript) -> Option<super::event::Transcript> {
        const EPS: f64 = 0.005;
        let ch = t.channel as usize;
        if self.finalized.len() <= ch {
            self.finalized.resize(ch + 1, 0.0);
        }
        let done = self.finalized[ch];
        if t.end <= done + EPS && t.end > t.start.max(0.0) {
            // Entirely within time whose finals were emitted.
            if t.is_final {
                self.stats.duplicate_finals_suppressed += 1;
            }
            return None;
        }
        if t.is_final {
            if t.start < done - EPS && !t.words.is_empty() {
                let before = t.words.len();
                t.words.retain(|w| w.start >= done - EPS);
                if t.words.len() < before {
                    self.stats.duplicate_finals_suppressed += 1;
                    let text: Vec<&str> = t.words.iter().map(|w| w.word.as_str()).collect();
                    t.text = text.join(" ");
                    t.start = done;
                }
            }
            self.finalized[ch] = done.max(t.end);
        }
        Some(t)
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
            Parsed::Transcript(mut t) => {
                self.stats.transcripts += 1;
                let bytes_per_sec = self.cfg.bytes_per_ms() * 1000.0;
                if self.proto.socket_clock() {
                    // Any result, interim too, covering audio sent after a
                    // doubt began proves the server reads this socket.
                    let heard = (t.end * bytes_per_sec).max(0.0) as u64;
                    self.prove_alive(id, Some(heard), None);
                    // The provider's clock restarted at zero with this
                    // socket: put the times back on the stream's timeline.
                    t.start = self.stream_secs(t.start);
                    t.end = self.stream_secs(t.end);
                    for w in &mut t.words {
                        w.start = self.stream_secs(w.start);
                        w.end = self.stream_secs(w.end);
                    }
                } else {
                    let heard = (t.end * bytes_per_sec).max(0.0) as u64;
                    self.prove_alive(id, None, Some(heard));
                }
                if let Some(t) = self.dedupe(t) {
                    self.emit(Event::Transcript(t));
                }
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
                // The server's high-water mark: informational. It is no
                // promise that the server stored those bytes durably
                // (docs/protocol.md), so it confirms nothing; only `ack` does.
                self.stats.server_offset = Some(offset);
            }
            Parsed::Processed(secs) => {
                // The provider's final results count this socket's audio
                // from zero.
                let samples = (secs * f64::from(self.cfg.sample_rate)).round().max(0.0) as u64;
                let acked = self.queue.ack_wire(samples * 2);
                self.count_acked(acked);
            }
            Parsed::Ack(offset) => {
                self.prove_alive(id, None, Some(offset));
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
                // A normal close after our finalize: the server sent every
                // final before it. (Any other close after the finalize is a
                // network failure: it reconnects, resends and finalizes
                // again within the close deadline.)
                self.confirm_all();
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
        if std::mem::take(&mut self.offline) && self.is_ready() {
            // The connection was kept through the offline spell, audio
            // held back. It resumes sending at once, and must prove within
            // PROOF_OF_LIFE that the server reads it, or it is replaced
            // and the unconfirmed tail resent.
            if self.state == State::Offline {
                self.set_state(State::Open, Some("network is back".into()), None);
            }
            self.start_probation(now, "network came back");
        }
    }

    /// The browser reports no network. Audio stops being written into the
    /// socket, which could not carry it (and would carry it twice: once if
    /// it arrived after all, once more when it is resent on the next
    /// connection); it waits in the queue with the usual bounds.
    fn handle_offline(&mut self) {
        self.offline = true;
        if self.state == State::Open {
            self.set_state(
                State::Offline,
                Some("the browser reports no network; audio is held in the queue".into()),
                None,
            );
        }
    }

    /// Puts the ready connection on probation: it keeps sending, and
    /// must prove alive within [`PROOF_OF_LIFE`] or be replaced.
    fn start_probation(&mut self, now: Instant, reason: &'static str) {
        let offset_mark = self.sent_offset;
        let Some(sock) = self.socket.as_mut().filter(|s| s.phase == Phase::Ready) else {
            return;
        };
        if sock.probation.is_some() {
            return;
        }
        // The answers it owed could not be received while the page did
        // not run: the watchdog starts afresh, the probation decides.
        if let Some(w) = sock.watchdog.as_mut() {
            w.rebase(now);
        }
        let until = now + PROOF_OF_LIFE;
        sock.probation = Some(Probation {
            wire_mark: sock.wire_bytes,
            offset_mark,
            reason,
        });
        self.timers.set(Timer::Probation, until);
    }

    /// Evidence from socket `id` that the server is alive: `heard_wire`,
    /// the audio bytes of this socket a result covers (interim ones too),
    /// or `acked`, a stream offset the server acknowledged; `None` for
    /// any other frame.
    fn prove_alive(&mut self, id: SocketId, heard_wire: Option<u64>, acked: Option<u64>) {
        let heartbeats = self.proto.expectation() == super::watchdog::Expectation::Heartbeat;
        let Some(sock) = self.current_mut(id) else {
            return;
        };
        let Some(p) = sock.probation else { return };
        // Frames the server sent before the doubt began (before it died,
        // perhaps) arrive first after a freeze: only an answer to audio
        // sent since then proves the server reads this socket. Omi answers
        // audio only with segments, which silence does not produce; for it,
        // any frame received once audio went out since counts (weaker:
        // docs/reliability.md says so).
        let heard = heard_wire.is_some_and(|w| w > p.wire_mark);
        let acked = acked.is_some_and(|o| o > p.offset_mark);
        let heartbeat = heartbeats && sock.wire_bytes > p.wire_mark;
        if heard || acked || heartbeat {
            sock.probation = None;
            self.timers.clear(Timer::Probation);
        }
    }

    fn probation_expired(&mut self, now: Instant) {
        let Some((id, p, sent_since)) = self
            .socket
            .as_ref()
            .and_then(|s| s.probation.map(|p| (s.id, p, s.wire_bytes > p.wire_mark)))
        else {
            return;
        };
        if !sent_since {
            // Nothing went out since the doubt began, so no answer was owed
            // and nothing is at risk: the ordinary watchdog takes over.
            if let Some(sock) = self.socket.as_mut() {
                sock.probation = None;
                if let Some(w) = sock.watchdog.as_mut() {
                    w.rebase(now);
                }
            }
            return;
        }
        self.stats.probes_failed += 1;
        self.close_socket(id, CLOSE_STALE, "no proof of life");
        let reason = format!(
            "stale: no answer within {} ms ({})",
            PROOF_OF_LIFE.as_millis(),
            p.reason
        );
        // The network is likely fine (the page, not the link, was away):
        // replace the connection at once.
        self.connection_lost(now, reason, true);
    }

    fn handle_token(
        &mut self,
        now: Instant,
        req: TokenRequest,
        result: Result<Credential, String>,
    ) -> Result<(), UsageError> {
        if self.awaiting_token != Some(req) {
            // A late answer to an attempt that already timed out (its id
            // is not the one in flight), or a caller bug: either way it
            // must not satisfy the current request.
            return Err(UsageError::UnexpectedToken);
        }
        self.awaiting_token = None;
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

    fn token_usable(&self, c: &Credential) -> bool {
        match self.cfg.provider {
            // Carried in a subprotocol: must be a header token.
            super::config::Provider::Deepgram | super::config::Provider::Generic => {
                is_token(&c.token)
            }
            super::config::Provider::Omi => !c.token.is_empty(),
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
                if self.socket.is_none() && self.awaiting_token.is_none() {
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
            let req = TokenRequest(self.next_token_request);
            self.next_token_request += 1;
            self.awaiting_token = Some(req);
            self.out.push_back(Output::RequestToken(req));
        } else {
            self.open_socket();
        }
    }

    fn open_socket(&mut self) {
        let id = SocketId(self.next_socket);
        self.next_socket += 1;
        self.socket = Some(Socket::new(id));
        let protocols = self.proto.protocols(&self.cfg, self.token.as_ref());
        self.out.push_back(Output::Open {
            id,
            url: self.url.clone(),
            protocols,
        });
    }

    fn attempt_timed_out(&mut self, now: Instant) {
        self.awaiting_token = None;
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
        self.timers.clear(Timer::Probation);
        // Unconfirmed audio goes back to the queue to be resent; what the
        // queue had to let go of unconfirmed is lost, and said so.
        let unsent = self.queue.rewind(&mut self.drops);
        self.uncount_sent(unsent);
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
        if sock.probation.is_some() {
            // The probation decides, on its own deadline.
            return;
        }
        let Some(w) = sock.watchdog.as_mut() else {
            return;
        };
        match w.check(now, timers_run) {
            None => {}
            Some(Stale::Suspended(_)) => {
                // The page did not run (a frozen or throttled tab): the
                // connection may well have survived; it gets a short
                // window to prove it instead of a reconnect on suspicion.
                self.start_probation(now, "page was suspended");
            }
            Some(stale) => {
                let id = sock.id;
                self.close_socket(id, CLOSE_STALE, "stale");
                self.connection_lost(now, stale.describe(), false);
            }
        }
    }

    fn close_deadline(&mut self) {
        let clean = self.queue.pending_len() == 0 && self.chunker.pending() == 0;
        // Without a finalize message (Omi) the linger ends the close: what
        // no segment confirmed by then is reported `unconfirmed` by
        // `finish`, never assumed delivered.
        let reason = if clean && self.closing.is_some_and(|c| c.finalize_sent) {
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
        self.awaiting_token = None;
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

    // --- sending ----------------------------------------------------------

    /// Runs after every input: expiry, sending, keepalive, events, timers.
    fn after_input(&mut self, now: Instant) {
        if !self.state.is_terminal() {
            self.queue.expire(now, &mut self.drops);
            self.pump(now);
            self.keepalive(now);
            self.end_linger_when_confirmed();
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
        while let Some(front) = self.queue.front().filter(|_| !self.offline) {
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
            // (generic acks, Deepgram finals, Omi segments): audio in
            // flight when a connection dies is resent, not lost silently.
            if let Some(sock) = self.socket.as_mut() {
                chunk.wire_end = sock.note_audio(chunk.offset, len);
            }
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

    /// Without a finalize message (Omi) the close lingers for segments
    /// that confirm the last audio; once everything is confirmed there is
    /// nothing left to wait for.
    fn end_linger_when_confirmed(&mut self) {
        let lingering = self.closing.is_some_and(|c| c.finalize_sent)
            && self.proto.finalize().is_none()
            && self.ready_id().is_some();
        if lingering && self.chunker.pending() == 0 && self.queue.all_confirmed() {
            self.close_now("closed");
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
