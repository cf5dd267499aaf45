//! The fake server: sockets, faults, latency, blackholes, held buffers and
//! the cadence of results, whatever the provider. What only one provider
//! does (its messages and replies, the format of its results) lives in that
//! provider's file behind [`ProviderFake`]; the server asks [`fake`] for it
//! and never matches on the provider itself.
//!
//! Everything the server sends goes into `out`, stamped with the instant it
//! reaches the client (`latency` later); the harness moves it into its
//! schedule after every call.

mod deepgram;
mod fault;
mod generic;
mod omi;
mod results;

pub use fault::Fault;

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use resilient_transcriber::core::{Config, Frame, Instant, Provider, SocketId};

use super::audio::{decode_frame, RATE};
use super::harness::{Deliver, Scheduled};
use super::{ms, secs};
use results::Heard;

/// What one provider's fake does that the others don't.
trait ProviderFake: Sync {
    /// The scenario's default client configuration for this provider.
    fn config(&self) -> Config;

    /// How long the server waits for a frame before it closes the socket
    /// (the default of [`FakeServer::idle_timeout`]).
    fn idle_timeout(&self) -> Option<Duration> {
        None
    }

    /// The handshake of `id` completes at `open_at`.
    fn on_accept(&self, _server: &mut FakeServer, _id: SocketId, _open_at: Instant) {}

    /// A text frame arrived on `id`.
    fn on_text(&self, server: &mut FakeServer, now: Instant, id: SocketId, text: &str);

    /// Whether a binary frame is a keepalive rather than audio.
    fn is_keepalive(&self, _frame: &[u8]) -> bool {
        false
    }

    /// An audio frame arrived on `id`: `n` samples from stream position
    /// `first`, already recorded in [`FakeServer::received`].
    fn on_audio(
        &self,
        server: &mut FakeServer,
        now: Instant,
        id: SocketId,
        first: u64,
        n: u64,
        _bytes: &[u8],
    ) {
        server.count_for_results(now, id, first, n, None);
    }

    /// Whether [`FakeServer::finals`] applies (off: interims only).
    fn obeys_finals(&self) -> bool {
        true
    }

    /// Whether [`FakeServer::interims`] applies.
    fn sends_interims(&self) -> bool {
        false
    }

    /// Whether result times count stream time rather than this socket's
    /// audio time.
    fn stream_clock(&self) -> bool {
        false
    }

    /// The text frame that carries a result.
    fn result(&self, r: &Heard) -> String;

    /// A final result ending at `end` (seconds, in the provider's clock)
    /// was sent on `id` as `text`.
    fn sent_final(&self, _server: &mut FakeServer, _id: SocketId, _end: f64, _text: &str) {}
}

/// The fake of `provider`.
fn fake(provider: Provider) -> &'static dyn ProviderFake {
    match provider {
        Provider::Deepgram => &deepgram::Deepgram,
        Provider::Omi => &omi::Omi,
        _ => &generic::Generic,
    }
}

/// The default configuration of a scenario for `provider` (Omi gets a token).
pub fn config(provider: Provider) -> Config {
    fake(provider).config()
}

/// How the server answers `Output::Open`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum OpenMode {
    /// Completes the handshake after this delay.
    Accept(Duration),
    /// Refuses: an error, then `SocketClosed` 1006 with no close frame.
    Refuse,
    /// Never answers: no open, no close (a dead route, a stuck proxy).
    NeverAnswer,
}

/// One of the server's own timers.
#[derive(Debug, Clone)]
pub(super) enum ServerTimer {
    Ping(SocketId),
    AckTick(SocketId),
    IdleCheck(SocketId),
    FlapReset(SocketId),
}

/// One audio frame as the server received it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Received {
    /// When.
    pub at: Instant,
    /// On which socket.
    pub socket: SocketId,
    /// Stream position of the first sample.
    pub first: u64,
    /// Samples.
    pub samples: u64,
}

/// The server's view of one socket.
#[derive(Debug, Clone)]
pub struct ServerSocket {
    /// The id the client gave it.
    pub id: SocketId,
    /// Subprotocols offered.
    pub protocols: Vec<String>,
    /// URL opened.
    pub url: String,
    /// When the client asked to open it.
    pub requested_at: Instant,
    /// Accepted (handshake done or scheduled).
    pub accepted: bool,
    /// Closed, by either side (server-side view).
    pub closed: bool,
    /// Blackholed.
    pub blackholed: bool,
    /// Text frames received.
    pub texts: Vec<(Instant, String)>,
    /// Audio frames received.
    pub audio: Vec<Received>,
    /// Close frames received from the client.
    pub client_close: Option<(Instant, u16, String)>,
    held: Option<u64>,
    stuck: Vec<Frame>,
    stuck_bytes: u64,
    last_rx: Instant,
    // Results per second of audio: stream position and socket audio time
    // (samples of this socket) where the pending result starts.
    result_from: Option<u64>,
    result_socket_from: u64,
    /// Stream samples (generic's stream clock) where it starts.
    result_stream_from: u64,
    result_samples: u64,
    /// Audio samples received on this socket (its own clock, as Deepgram
    /// and Omi count it).
    pub socket_samples: u64,
    /// Samples since the last interim result.
    interim_samples: u64,
    // Omi.
    authed: bool,
    // Generic.
    generic: generic::StreamState,
}

/// A scripted server speaking one provider's protocol, like the real service:
///
/// - Deepgram: a final `Results` message per second of audio received
///   (times in this socket's audio, from zero, as Deepgram counts them), an
///   interim one every 250 ms when `interims` is set (and no finals at all
///   while `finals` is off); on `CloseStream`, `Results` for the rest,
///   `Metadata`, then close 1000; if no frame (audio or `KeepAlive`)
///   arrives for 10 s, close 1011 `NET-0001`.
/// - Omi: answers the `auth` message with `auth_response` (success unless
///   `reject_auth`), sends `ping` every 10 s, a segment array per second of
///   audio (times in this socket's audio); binary frames of ≤ 2 bytes are
///   keepalives.
/// - Generic (`docs/protocol.md`): `started` on `start`; stores audio per
///   stream with dedupe by offset; `ack` with the stored high-water mark at
///   most one second after audio arrives; a transcript per second of stored
///   audio; on `finish`: a final ack, `finished`, close 1000 `"finished"`.
#[derive(Debug)]
pub struct FakeServer {
    /// The protocol it speaks.
    pub provider: Provider,
    /// How opens are answered.
    pub open_mode: OpenMode,
    /// One-way latency of everything the server sends.
    pub latency: Duration,
    /// Deepgram: answer `CloseStream` (final results and close).
    pub answer_finalize: bool,
    /// Answer an utterance's flush (Deepgram `Finalize`, generic `flush`).
    pub answer_flush: bool,
    /// Every sample the client sends sits at the stream offset its value
    /// names (off under push-to-talk, whose gated audio never enters the
    /// stream): generic checks each frame's offset against it.
    pub positions_are_offsets: bool,
    /// Interleaved channels of the audio (results come per channel).
    pub channels: u64,
    /// Only this channel gets results (a provider lagging on the other).
    pub only_channel: Option<u64>,
    /// Omi: reject the auth message.
    pub reject_auth: bool,
    /// Omi: delay before `auth_response`.
    pub auth_delay: Duration,
    /// Deepgram idle timeout (`None` = never).
    pub idle_timeout: Option<Duration>,
    /// Generic: send acks.
    pub acking: bool,
    /// Generic: ack period.
    pub ack_every: Duration,
    /// Deepgram: also send interim results (every 250 ms of audio).
    pub interims: bool,
    /// Deepgram/Omi: send final results (off: interims only).
    pub finals: bool,
    /// Samples of audio per final result (default one second); a value
    /// that is not a multiple of the chunk makes finals end mid-chunk.
    pub final_every: u64,
    /// Deepgram: results carry word timings, one word `wN` per 50 ms of
    /// stream (word N covers stream samples `[800 N, 800 (N + 1))`).
    pub words: bool,
    /// Stops reading: audio and text are no longer processed (nothing is
    /// received), while pings and other server-initiated frames continue.
    pub stuck_reader: bool,
    /// Every socket ever opened, by id.
    pub sockets: BTreeMap<SocketId, ServerSocket>,
    /// Every audio frame received, in arrival order.
    pub received: Vec<Received>,
    /// Generic: stored stream bytes by stream id.
    pub streams: HashMap<String, Vec<u8>>,
    /// Generic: bytes skipped by `seek` (gaps recorded), and duplicates discarded.
    pub gap_bytes: u64,
    /// Generic: duplicate bytes discarded.
    pub duplicate_bytes: u64,
    /// Generic: the highest offset acknowledged per stream (what survives
    /// a [`Fault::Crash`]).
    pub acked_streams: HashMap<String, u64>,
    /// Generic: the final transcripts sent per stream (end in stream
    /// seconds, frame), resent after `start` when `final_from` asks.
    pub stream_finals: HashMap<String, Vec<(f64, String)>>,
    /// Generic: honour `start`'s `final_from` (a server that keeps its
    /// transcripts); off, it ignores the field as an older server would.
    pub resend_finals: bool,
    /// Protocol violations the server saw (a test failure if non-empty
    /// unless the test expects them).
    pub violations: Vec<String>,
    down_until: Option<Instant>,
    flap: Option<(Instant, Duration)>,
    current: Option<SocketId>,
    /// What the server sent or scheduled, for the harness to absorb.
    pub(super) out: Vec<(Instant, Scheduled)>,
}

impl FakeServer {
    pub(super) fn new(provider: Provider) -> FakeServer {
        FakeServer {
            provider,
            open_mode: OpenMode::Accept(ms(150)),
            latency: ms(20),
            answer_finalize: true,
            answer_flush: true,
            positions_are_offsets: true,
            channels: 1,
            only_channel: None,
            reject_auth: false,
            auth_delay: ms(100),
            idle_timeout: fake(provider).idle_timeout(),
            acking: true,
            ack_every: secs(1),
            interims: false,
            finals: true,
            final_every: RATE,
            words: false,
            stuck_reader: false,
            sockets: BTreeMap::new(),
            received: Vec::new(),
            streams: HashMap::new(),
            gap_bytes: 0,
            duplicate_bytes: 0,
            acked_streams: HashMap::new(),
            stream_finals: HashMap::new(),
            resend_finals: true,
            violations: Vec::new(),
            down_until: None,
            flap: None,
            current: None,
            out: Vec::new(),
        }
    }

    fn fake(&self) -> &'static dyn ProviderFake {
        fake(self.provider)
    }

    /// The socket most recently accepted and still open, server side.
    pub fn current(&self) -> Option<SocketId> {
        self.current
            .filter(|id| self.sockets.get(id).is_some_and(|s| !s.closed))
    }

    /// Total samples received (with duplicates).
    pub fn samples_received(&self) -> u64 {
        self.received.iter().map(|r| r.samples).sum()
    }

    /// Whether the client's binary frame `b` is a keepalive, not audio.
    pub(super) fn is_keepalive(&self, b: &[u8]) -> bool {
        self.fake().is_keepalive(b)
    }

    /// The `bufferedAmount` the browser would report for `id`, if held.
    pub(super) fn buffered(&self, id: SocketId) -> Option<u64> {
        let s = self.sockets.get(&id)?;
        s.held.map(|base| base + s.stuck_bytes)
    }

    // --- what the server sends ---

    fn emit(&mut self, at: Instant, d: Deliver) {
        self.out.push((at + self.latency, Scheduled::FromServer(d)));
    }

    fn timer(&mut self, at: Instant, t: ServerTimer) {
        self.out.push((at, Scheduled::Server(t)));
    }

    /// The server closes `id` with a close frame (`code` 1006: without one).
    fn close(&mut self, now: Instant, id: SocketId, code: u16, reason: &str) {
        let Some(s) = self.sockets.get_mut(&id) else {
            return;
        };
        if s.closed {
            return;
        }
        s.closed = true;
        if code == 1006 {
            self.emit(now, Deliver::Error(id));
        }
        self.emit(now, Deliver::Closed(id, code, reason.to_string()));
    }

    // --- what the client does ---

    pub(super) fn on_open(&mut self, now: Instant, id: SocketId, url: &str, protocols: &[String]) {
        let mut s = ServerSocket {
            id,
            protocols: protocols.to_vec(),
            url: url.to_string(),
            requested_at: now,
            accepted: false,
            closed: false,
            blackholed: false,
            texts: Vec::new(),
            audio: Vec::new(),
            client_close: None,
            held: None,
            stuck: Vec::new(),
            stuck_bytes: 0,
            last_rx: now,
            result_from: None,
            result_socket_from: 0,
            result_stream_from: 0,
            result_samples: 0,
            socket_samples: 0,
            interim_samples: 0,
            authed: false,
            generic: generic::StreamState::default(),
        };
        let down = self.down_until.is_some_and(|u| now < u);
        let mode = if down {
            OpenMode::Refuse
        } else {
            self.open_mode
        };
        match mode {
            OpenMode::Refuse => {
                s.closed = true;
                self.emit(now, Deliver::Error(id));
                self.emit(now, Deliver::Closed(id, 1006, String::new()));
            }
            OpenMode::NeverAnswer => {}
            OpenMode::Accept(handshake) => {
                s.accepted = true;
                let open_at = now + handshake;
                s.last_rx = open_at;
                self.out.push((
                    open_at + self.latency,
                    Scheduled::FromServer(Deliver::Opened(id)),
                ));
                self.current = Some(id);
                self.fake().on_accept(self, id, open_at);
                if let Some(idle) = self.idle_timeout {
                    self.timer(open_at + idle, ServerTimer::IdleCheck(id));
                }
                if let Some((until, up)) = self.flap {
                    if now < until {
                        self.timer(open_at + up, ServerTimer::FlapReset(id));
                    }
                }
            }
        }
        self.sockets.insert(id, s);
    }

    pub(super) fn on_client_close(&mut self, now: Instant, id: SocketId, code: u16, reason: &str) {
        let latency = self.latency;
        let Some(s) = self.sockets.get_mut(&id) else {
            return;
        };
        if s.blackholed {
            return;
        }
        s.client_close = Some((now, code, reason.to_string()));
        if s.accepted && !s.closed {
            s.closed = true;
            // The browser reports the end of the close handshake: a late
            // event from a socket the session already forgot.
            self.out.push((
                now + latency * 2,
                Scheduled::FromServer(Deliver::Closed(id, code, reason.to_string())),
            ));
        }
    }

    pub(super) fn on_frame(&mut self, now: Instant, id: SocketId, frame: Frame) {
        let Some(s) = self.sockets.get_mut(&id) else {
            self.violations
                .push(format!("frame on unknown socket {id:?}"));
            return;
        };
        if s.closed || s.blackholed || !s.accepted || self.stuck_reader {
            return;
        }
        if s.held.is_some() {
            let len = match &frame {
                Frame::Text(t) => t.len(),
                Frame::Binary(b) => b.len(),
            } as u64;
            s.stuck_bytes += len;
            s.stuck.push(frame);
            return;
        }
        s.last_rx = now;
        match frame {
            Frame::Text(text) => {
                s.texts.push((now, text.clone()));
                self.fake().on_text(self, now, id, &text);
            }
            Frame::Binary(b) => self.on_binary(now, id, b),
        }
    }

    fn on_binary(&mut self, now: Instant, id: SocketId, b: Vec<u8>) {
        if self.is_keepalive(&b) {
            return;
        }
        if b.is_empty() {
            self.violations.push("empty binary frame".into());
            self.close(now, id, 1003, "empty frame");
            return;
        }
        let (first, n) = decode_frame(&b);
        let r = Received {
            at: now,
            socket: id,
            first,
            samples: n,
        };
        self.received.push(r);
        self.sockets.get_mut(&id).expect("exists").audio.push(r);
        self.fake().on_audio(self, now, id, first, n, &b);
    }

    // --- the server's own timers ---

    pub(super) fn on_timer(&mut self, now: Instant, t: ServerTimer) {
        match t {
            ServerTimer::Ping(id) => omi::ping(self, now, id),
            ServerTimer::AckTick(id) => generic::ack_tick(self, now, id),
            ServerTimer::IdleCheck(id) => self.idle_check(now, id),
            ServerTimer::FlapReset(id) => self.close(now, id, 1006, ""),
        }
    }

    /// Closes `id` 1011 `NET-0001` if nothing arrived for `idle_timeout`
    /// (a blackholed socket just ends: nobody hears the close).
    fn idle_check(&mut self, now: Instant, id: SocketId) {
        let Some(idle) = self.idle_timeout else {
            return;
        };
        let Some(s) = self.sockets.get(&id) else {
            return;
        };
        if s.closed {
            return;
        }
        if now.saturating_duration_since(s.last_rx) >= idle {
            if s.blackholed {
                self.sockets.get_mut(&id).expect("exists").closed = true;
            } else {
                self.close(now, id, 1011, "NET-0001");
            }
        } else {
            let at = s.last_rx + idle;
            self.timer(at, ServerTimer::IdleCheck(id));
        }
    }
}
