//! Scenario harness: one [`Session`] on a virtual clock, a scripted
//! [`FakeServer`] for one provider, and a microphone that pushes audio whose
//! samples encode their own position in the stream.
//!
//! Modelled on quinn-proto's `tests/util.rs` `Pair`: [`Harness::step`]
//! advances the clock to the earlier of the session's `Output::Timeout`
//! deadline, the next scripted action (server reply, fault, client input) and
//! the next microphone push, does that one thing, and drains the session.
//! Hours of simulated outage run in milliseconds.
//!
//! After every drain the harness checks the invariants every scenario relies
//! on (and panics with the recent trace when one breaks):
//! - `bytes_pushed == bytes_sent + bytes_queued + bytes_dropped`;
//! - the bytes of all `Dropped` events sum to `stats.bytes_dropped`;
//! - `queued_bytes() <= buffer.maxBytes`;
//! - the `Timeout` deadline is never in the past;
//! - once `closed`/`failed`, the state never changes again, and `closed` is
//!   the last event (only audio pushed afterwards is reported after it);
//! - time makes progress (no busy loop at one instant).
#![allow(dead_code)]

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::fmt::Write as _;
use std::time::Duration;

use resilient_transcriber::core::{
    Config, Credential, DropReason, Dropped, ErrorCode, Event, Frame, Input, Instant, Output,
    Provider, Session, SocketId, State, StateChange, Stats, TokenRequest, Transcript,
};

/// The target sample rate of every scenario.
pub const RATE: u64 = 16_000;

/// Milliseconds.
pub fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

/// Seconds.
pub fn secs(n: u64) -> Duration {
    Duration::from_secs(n)
}

/// An instant `n` ms after the epoch.
pub fn t(n: u64) -> Instant {
    Instant::from_millis(n)
}

/// Milliseconds of audio in `bytes` of PCM16 at [`RATE`].
pub fn audio_ms(bytes: u64) -> f64 {
    bytes as f64 / (RATE as f64 * 2.0 / 1000.0)
}

// --- self-describing audio ---------------------------------------------------

/// The sample at absolute stream position `i`: even positions carry the high
/// 16 bits of `i`, odd ones the low 16 bits, so any two samples starting at
/// an even position spell out where they are (for 74 hours at 16 kHz).
pub fn sample_at(i: u64) -> i16 {
    let v = if i % 2 == 0 { i >> 16 } else { i & 0xFFFF };
    v as u16 as i16
}

/// The samples at positions `from..from + n`.
pub fn samples(from: u64, n: u64) -> Vec<i16> {
    (from..from + n).map(sample_at).collect()
}

/// PCM16 little-endian bytes of positions `from..from + n`.
pub fn pcm_bytes(from: u64, n: u64) -> Vec<u8> {
    samples(from, n)
        .iter()
        .flat_map(|s| s.to_le_bytes())
        .collect()
}

/// Decodes a binary audio frame: the position of its first sample and its
/// length in samples. Panics if the frame is not a contiguous run of the
/// stream (a corrupted, reordered or spliced frame). Frames start on chunk
/// boundaries, which are even positions.
pub fn decode_frame(bytes: &[u8]) -> (u64, u64) {
    assert!(bytes.len() % 2 == 0, "odd-length audio frame");
    let s: Vec<u16> = bytes
        .chunks_exact(2)
        .map(|b| u16::from_le_bytes([b[0], b[1]]))
        .collect();
    assert!(s.len() >= 2, "audio frame of {} samples", s.len());
    let first = ((u64::from(s[0]) << 16) | u64::from(s[1])) - 1;
    assert_eq!(first % 2, 0, "frame starts at odd position {first}");
    for (k, &v) in s.iter().enumerate() {
        let want = sample_at(first + k as u64) as u16;
        assert_eq!(
            v, want,
            "frame starting at {first}: sample {k} is {v}, expected {want}"
        );
    }
    (first, s.len() as u64)
}

/// The default configuration of a scenario for `provider` (Omi gets a token).
pub fn config(provider: Provider) -> Config {
    let url = match provider {
        Provider::Deepgram => "wss://api.deepgram.test/v1/listen",
        Provider::Omi => "wss://api.omi.test/v4/web/listen",
        _ => "wss://stt.test/v1/stream",
    };
    let mut c = Config::new(provider, url);
    if provider == Provider::Omi {
        c.token = Some("omi-secret".into());
    }
    c
}

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
            Deliver::Token(id, r) => Input::Token(*id, r.clone().map(Credential::token)),
            Deliver::Close { flush, timeout } => Input::Close {
                flush: *flush,
                timeout: *timeout,
            },
        }
    }
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

/// A scripted fault, applied at a given instant to the server's current
/// socket (the one most recently accepted and still open).
///
/// - `Close { code, reason }`: the server sends a close frame with that code
///   and reason (e.g. 1008, 4001, 1011 `"NET-0001"`, unsolicited 1000).
/// - `Reset`: the connection drops without a close frame: the browser fires
///   `error`, then `close` with 1006.
/// - `Blackhole`: from now on nothing is delivered in either direction on
///   that socket and it never closes (a dead NAT mapping, a sleeping Wi-Fi).
/// - `Down(d)`: the server dies for `d`: the current socket resets and every
///   open in the window is refused (1006).
/// - `Flap { for_, up }`: for `for_`, every socket the server accepts resets
///   `up` after its open (a crash-looping backend behind a load balancer);
///   the current socket resets at once.
/// - `StopAcking` / `ResumeAcking`: the generic server keeps storing audio
///   but stops (or resumes) sending `ack`s.
/// - `SendText(s)`: the server sends this text frame (malformed JSON, an
///   unknown type, an error report, ...).
/// - `SendBinary(b)`: the server sends a binary frame (no provider does).
/// - `HoldBuffered(n)`: the socket stops draining: what the client sends
///   stays in the browser's send buffer, whose `bufferedAmount` reads `n`
///   plus everything sent since, and nothing reaches the server.
/// - `ReleaseBuffered`: the buffer drains: the held frames reach the server.
/// - `OpenMode(m)`: from now on opens are answered per [`OpenMode`].
/// - `Crash`: the server dies before persisting: every stored stream is cut
///   back to the last offset it acknowledged (what it held unacknowledged,
///   and may have reported in `started`, is gone), and the current socket
///   resets.
/// - `StopReading` / `ResumeReading`: the server stops (or resumes)
///   processing what arrives (a stuck reader), while its own heartbeats
///   and timers carry on.
#[derive(Debug, Clone, PartialEq)]
pub enum Fault {
    /// See the type docs.
    Close {
        /// Close code.
        code: u16,
        /// Close reason.
        reason: String,
    },
    /// See the type docs.
    Reset,
    /// See the type docs.
    Blackhole,
    /// See the type docs.
    Down(Duration),
    /// See the type docs.
    Flap {
        /// How long the backend keeps crashing.
        for_: Duration,
        /// How long each connection lives.
        up: Duration,
    },
    /// See the type docs.
    StopAcking,
    /// See the type docs.
    ResumeAcking,
    /// See the type docs.
    SendText(String),
    /// See the type docs.
    SendBinary(Vec<u8>),
    /// See the type docs.
    HoldBuffered(u64),
    /// See the type docs.
    ReleaseBuffered,
    /// See the type docs.
    OpenMode(OpenMode),
    /// See the type docs.
    Crash,
    /// See the type docs.
    StopReading,
    /// See the type docs.
    ResumeReading,
}

impl Fault {
    /// A close frame.
    pub fn close(code: u16, reason: &str) -> Fault {
        Fault::Close {
            code,
            reason: reason.into(),
        }
    }
}

#[derive(Debug, Clone)]
enum ServerTimer {
    Ping(SocketId),
    AckTick(SocketId),
    IdleCheck(SocketId),
    FlapReset(SocketId),
}

#[derive(Debug, Clone)]
enum Scheduled {
    /// From the server, over the socket: lost if the socket is blackholed.
    FromServer(Deliver),
    /// From the page (token, lifecycle, an injected stale event).
    Client(Deliver),
    Server(ServerTimer),
    Fault(Fault),
}

// --- the fake server -----------------------------------------------------------

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
    result_samples: u64,
    /// Audio samples received on this socket (its own clock, as Deepgram
    /// and Omi count it).
    pub socket_samples: u64,
    /// Samples since the last interim result.
    interim_samples: u64,
    // Omi.
    authed: bool,
    // Generic.
    stream: Option<String>,
    offset: u64,
    acked: u64,
    ack_scheduled: bool,
    finishing: bool,
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
    out: Vec<(Instant, Scheduled)>,
}

impl FakeServer {
    fn new(provider: Provider) -> FakeServer {
        FakeServer {
            provider,
            open_mode: OpenMode::Accept(ms(150)),
            latency: ms(20),
            answer_finalize: true,
            reject_auth: false,
            auth_delay: ms(100),
            idle_timeout: (provider == Provider::Deepgram).then_some(secs(10)),
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

    /// The socket most recently accepted and still open, server side.
    pub fn current(&self) -> Option<SocketId> {
        self.current
            .filter(|id| self.sockets.get(id).is_some_and(|s| !s.closed))
    }

    /// The generic stream stored under `id`.
    pub fn stream(&self, id: &str) -> &[u8] {
        self.streams.get(id).map_or(&[], Vec::as_slice)
    }

    /// Total samples received (with duplicates).
    pub fn samples_received(&self) -> u64 {
        self.received.iter().map(|r| r.samples).sum()
    }

    fn emit(&mut self, at: Instant, d: Deliver) {
        self.out.push((at + self.latency, Scheduled::FromServer(d)));
    }

    fn timer(&mut self, at: Instant, t: ServerTimer) {
        self.out.push((at, Scheduled::Server(t)));
    }

    fn on_open(&mut self, now: Instant, id: SocketId, url: &str, protocols: &[String]) {
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
            result_samples: 0,
            socket_samples: 0,
            interim_samples: 0,
            authed: false,
            stream: None,
            offset: 0,
            acked: 0,
            ack_scheduled: false,
            finishing: false,
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
                if self.provider == Provider::Omi {
                    self.timer(open_at + secs(10), ServerTimer::Ping(id));
                }
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

    fn on_client_close(&mut self, now: Instant, id: SocketId, code: u16, reason: &str) {
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

    fn on_frame(&mut self, now: Instant, id: SocketId, frame: Frame) {
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
                self.on_text(now, id, &text);
            }
            Frame::Binary(b) => self.on_binary(now, id, b),
        }
    }

    fn on_text(&mut self, now: Instant, id: SocketId, text: &str) {
        match self.provider {
            Provider::Deepgram => match text {
                r#"{"type":"KeepAlive"}"# => {}
                r#"{"type":"CloseStream"}"# => {
                    if self.answer_finalize {
                        self.flush_results(now, id, true);
                        self.emit(
                            now,
                            Deliver::Text(
                                id,
                                r#"{"type":"Metadata","request_id":"r","duration":1}"#.into(),
                            ),
                        );
                        self.close(now, id, 1000, "");
                    }
                }
                other => self
                    .violations
                    .push(format!("deepgram: unexpected text {other}")),
            },
            Provider::Omi => {
                if text.starts_with(r#"{"type":"auth""#) {
                    let delay = self.auth_delay;
                    let reply = if self.reject_auth {
                        r#"{"type":"auth_response","success":false,"error":"invalid token"}"#
                    } else {
                        r#"{"type":"auth_response","success":true}"#
                    };
                    self.sockets.get_mut(&id).expect("exists").authed = !self.reject_auth;
                    self.emit(now + delay, Deliver::Text(id, reply.into()));
                } else {
                    self.violations.push(format!("omi: unexpected text {text}"));
                }
            }
            _ => self.generic_text(now, id, text),
        }
    }

    fn generic_text(&mut self, now: Instant, id: SocketId, text: &str) {
        let field = |name: &str| -> Option<u64> {
            let key = format!("\"{name}\":");
            let at = text.find(&key)? + key.len();
            let digits: String = text[at..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            digits.parse().ok()
        };
        if text.starts_with(r#"{"type":"start""#) {
            let stream = text
                .split(r#""stream":""#)
                .nth(1)
                .and_then(|r| r.split('"').next())
                .unwrap_or("")
                .to_string();
            let offset = field("offset").unwrap_or(0);
            let h = self.stream(&stream).len() as u64;
            // Transcription state belongs to the stream, not the socket:
            // audio stored on a connection that died before its final is
            // finalized on the next one.
            let carried = self
                .sockets
                .values_mut()
                .filter(|o| {
                    (o.closed || o.blackholed) && o.stream.as_deref() == Some(stream.as_str())
                })
                .find_map(|o| {
                    o.result_from
                        .take()
                        .map(|f| (f, std::mem::take(&mut o.result_samples)))
                });
            let s = self.sockets.get_mut(&id).expect("exists");
            if let Some((from, n)) = carried {
                s.result_from = Some(from);
                s.result_samples = n;
            }
            s.stream = Some(stream.clone());
            s.offset = offset;
            s.acked = 0;
            self.emit(
                now,
                Deliver::Text(
                    id,
                    format!(r#"{{"type":"started","stream":"{stream}","offset":{h}}}"#),
                ),
            );
            // The finals the client may have missed (in flight when the
            // last connection died), as docs/protocol.md describes.
            let final_from = text.split(r#""final_from":"#).nth(1).and_then(|r| {
                r.split(|c: char| c != '.' && !c.is_ascii_digit())
                    .next()?
                    .parse::<f64>()
                    .ok()
            });
            if let (true, Some(from)) = (self.resend_finals, final_from) {
                let again: Vec<String> = self
                    .stream_finals
                    .get(&stream)
                    .map(|v| {
                        v.iter()
                            .filter(|(end, _)| *end > from + 1e-6)
                            .map(|(_, t)| t.clone())
                            .collect()
                    })
                    .unwrap_or_default();
                for t in again {
                    self.emit(now, Deliver::Text(id, t));
                }
            }
        } else if text.starts_with(r#"{"type":"seek""#) {
            let offset = field("offset").unwrap_or(0);
            let s = self.sockets.get_mut(&id).expect("exists");
            if offset <= s.offset {
                self.violations
                    .push(format!("seek to {offset} not after {}", s.offset));
            }
            s.offset = offset;
        } else if text == r#"{"type":"keepalive"}"# {
        } else if text == r#"{"type":"finish"}"# {
            self.sockets.get_mut(&id).expect("exists").finishing = true;
            if self.answer_finalize {
                self.flush_results(now, id, true);
                let h = self.generic_high_water(id);
                if let Some(st) = self.sockets[&id].stream.clone() {
                    self.acked_streams.insert(st, h);
                }
                self.emit(
                    now,
                    Deliver::Text(id, format!(r#"{{"type":"ack","offset":{h}}}"#)),
                );
                self.emit(
                    now,
                    Deliver::Text(id, format!(r#"{{"type":"finished","offset":{h}}}"#)),
                );
                self.close(now, id, 1000, "finished");
            }
        } else {
            self.violations
                .push(format!("generic: unexpected text {text}"));
        }
    }

    fn generic_high_water(&self, id: SocketId) -> u64 {
        let s = &self.sockets[&id];
        s.stream
            .as_ref()
            .map_or(0, |st| self.stream(st).len() as u64)
    }

    fn on_binary(&mut self, now: Instant, id: SocketId, b: Vec<u8>) {
        if self.provider == Provider::Omi && b.len() <= 2 {
            return; // Omi keepalive
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
        match self.provider {
            Provider::Deepgram | Provider::Omi => {
                if self.provider == Provider::Omi && !self.sockets[&id].authed {
                    self.violations.push("omi: audio before auth".into());
                }
                self.count_for_results(now, id, first, n);
            }
            _ => self.generic_audio(now, id, first, &b),
        }
    }

    fn count_for_results(&mut self, now: Instant, id: SocketId, first: u64, n: u64) {
        let s = self.sockets.get_mut(&id).expect("exists");
        if s.result_from.is_none() {
            s.result_from = Some(first);
            s.result_socket_from = s.socket_samples;
        }
        s.socket_samples += n;
        s.result_samples += n;
        s.interim_samples += n;
        let interim_due = s.interim_samples >= RATE / 4;
        if interim_due {
            s.interim_samples = 0;
        }
        let final_due = s.result_samples >= self.final_every;
        if final_due && (self.finals || self.provider == Provider::Generic) {
            self.flush_results(now, id, false);
        } else if interim_due && self.interims && self.provider == Provider::Deepgram {
            self.send_result(now, id, false, false);
        }
    }

    /// A final transcript for the audio counted since the last one (at
    /// most `final_every` samples of it unless `last`; the rest carries).
    fn flush_results(&mut self, now: Instant, id: SocketId, last: bool) {
        let every = self.final_every;
        let s = self.sockets.get_mut(&id).expect("exists");
        let total = s.result_samples;
        let take = if last { total } else { total.min(every) };
        s.result_samples = take;
        self.send_result(now, id, true, last);
        let s = self.sockets.get_mut(&id).expect("exists");
        let rest = total - take;
        match (s.result_from, rest) {
            (Some(from), r) if r > 0 => {
                s.result_from = Some(from + take);
                s.result_socket_from += take;
                s.result_samples = r;
            }
            _ => {
                s.result_from = None;
                s.result_samples = 0;
            }
        }
    }

    /// A result for the audio counted since the last final. Its text names
    /// the stream positions (`audio A..B`); its times are this socket's
    /// audio time (Deepgram, Omi) or stream time (generic), as the real
    /// services count them.
    fn send_result(&mut self, now: Instant, id: SocketId, is_final: bool, last: bool) {
        let s = &self.sockets[&id];
        let Some(from) = s.result_from else {
            return;
        };
        let n = s.result_samples;
        let clock_from = match self.provider {
            Provider::Generic => from,
            _ => s.result_socket_from,
        };
        let (start, dur) = (clock_from as f64 / RATE as f64, n as f64 / RATE as f64);
        let (words, timed) = if self.words {
            // One word per 50 ms of stream that this result fully covers.
            let mut names = Vec::new();
            let mut timed = Vec::new();
            let mut w = from.div_ceil(800);
            while (w + 1) * 800 <= from + n {
                let ws = (clock_from + w * 800 - from) as f64 / RATE as f64;
                names.push(format!("w{w}"));
                timed.push(format!(
                    r#"{{"word":"w{w}","start":{ws},"end":{},"confidence":0.9}}"#,
                    ws + 0.05
                ));
                w += 1;
            }
            (names.join(" "), timed.join(","))
        } else {
            (format!("audio {from}..{}", from + n), String::new())
        };
        let text = match self.provider {
            Provider::Deepgram => format!(
                r#"{{"type":"Results","channel_index":[0,1],"duration":{dur},"start":{start},"is_final":{is_final},"speech_final":{last},"channel":{{"alternatives":[{{"transcript":"{words}","confidence":0.9,"words":[{timed}]}}]}}}}"#
            ),
            Provider::Omi => format!(
                r#"[{{"id":"s{from}","text":"{words}","speaker":"SPEAKER_00","start":{start},"end":{}}}]"#,
                start + dur
            ),
            _ => format!(
                r#"{{"type":"transcript","text":"{words}","is_final":true,"start":{start},"end":{}}}"#,
                start + dur
            ),
        };
        if self.provider == Provider::Generic && is_final {
            if let Some(st) = self.sockets[&id].stream.clone() {
                self.stream_finals
                    .entry(st)
                    .or_default()
                    .push((start + dur, text.clone()));
            }
        }
        self.emit(now, Deliver::Text(id, text));
    }

    fn generic_audio(&mut self, now: Instant, id: SocketId, first: u64, b: &[u8]) {
        let s = self.sockets.get_mut(&id).expect("exists");
        let Some(stream) = s.stream.clone() else {
            self.violations.push("generic: audio before start".into());
            self.close(now, id, 4400, "start first");
            return;
        };
        let off = s.offset;
        if off != first * 2 {
            self.violations.push(format!(
                "generic: frame carries offset {} but the server's offset is {off}",
                first * 2
            ));
        }
        s.offset += b.len() as u64;
        let store = self.streams.entry(stream).or_default();
        let h = store.len() as u64;
        let end = off + b.len() as u64;
        if end <= h {
            self.duplicate_bytes += b.len() as u64;
        } else if off <= h {
            self.duplicate_bytes += h - off;
            store.extend_from_slice(&b[(h - off) as usize..]);
        } else {
            // A gap the client announced with `seek`: keep the timeline
            // aligned by recording the gap as zeros.
            self.gap_bytes += off - h;
            store.resize(off as usize, 0);
            store.extend_from_slice(b);
        }
        let (acking, every) = (self.acking, self.ack_every);
        let s = self.sockets.get_mut(&id).expect("exists");
        if acking && !s.ack_scheduled {
            s.ack_scheduled = true;
            self.timer(now + every, ServerTimer::AckTick(id));
        }
        // Like a real resumable server, it transcribes what it stores, not
        // the duplicates it discards.
        let fresh_from = (off.max(h) / 2).max(first);
        let fresh = (end / 2).saturating_sub(fresh_from);
        if fresh > 0 {
            self.count_for_results(now, id, fresh_from, fresh);
        }
    }

    fn on_timer(&mut self, now: Instant, t: ServerTimer) {
        match t {
            ServerTimer::Ping(id) => {
                if self.sockets.get(&id).is_some_and(|s| !s.closed) {
                    self.emit(now, Deliver::Text(id, "ping".into()));
                    self.timer(now + secs(10), ServerTimer::Ping(id));
                }
            }
            ServerTimer::AckTick(id) => {
                let h = self.generic_high_water(id);
                let acking = self.acking;
                let s = self.sockets.get_mut(&id).expect("exists");
                s.ack_scheduled = false;
                if !s.closed && acking && h > s.acked {
                    s.acked = h;
                    if let Some(st) = s.stream.clone() {
                        self.acked_streams.insert(st, h);
                    }
                    self.emit(
                        now,
                        Deliver::Text(id, format!(r#"{{"type":"ack","offset":{h}}}"#)),
                    );
                }
            }
            ServerTimer::IdleCheck(id) => {
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
            ServerTimer::FlapReset(id) => self.close(now, id, 1006, ""),
        }
    }

    fn apply(&mut self, now: Instant, fault: Fault) {
        let cur = self.current();
        match fault {
            Fault::Close { code, reason } => {
                if let Some(id) = cur {
                    self.close(now, id, code, &reason);
                }
            }
            Fault::Reset => {
                if let Some(id) = cur {
                    self.close(now, id, 1006, "");
                }
            }
            Fault::Blackhole => {
                if let Some(id) = cur {
                    self.sockets.get_mut(&id).expect("exists").blackholed = true;
                }
            }
            Fault::Down(d) => {
                self.down_until = Some(now + d);
                if let Some(id) = cur {
                    self.close(now, id, 1006, "");
                }
            }
            Fault::Flap { for_, up } => {
                self.flap = Some((now + for_, up));
                if let Some(id) = cur {
                    self.close(now, id, 1006, "");
                }
            }
            Fault::StopAcking => self.acking = false,
            Fault::ResumeAcking => {
                self.acking = true;
                if let Some(id) = cur {
                    self.timer(now, ServerTimer::AckTick(id));
                }
            }
            Fault::SendText(s) => {
                if let Some(id) = cur {
                    self.emit(now, Deliver::Text(id, s));
                }
            }
            Fault::SendBinary(b) => {
                if let Some(id) = cur {
                    self.emit(now, Deliver::Binary(id, b));
                }
            }
            Fault::HoldBuffered(n) => {
                if let Some(id) = cur {
                    self.sockets.get_mut(&id).expect("exists").held = Some(n);
                }
            }
            Fault::ReleaseBuffered => {
                for id in self.sockets.keys().copied().collect::<Vec<_>>() {
                    let s = self.sockets.get_mut(&id).expect("exists");
                    if s.held.take().is_some() {
                        let stuck = std::mem::take(&mut s.stuck);
                        s.stuck_bytes = 0;
                        for f in stuck {
                            self.on_frame(now, id, f);
                        }
                    }
                }
            }
            Fault::OpenMode(m) => self.open_mode = m,
            Fault::Crash => {
                for (id, store) in self.streams.iter_mut() {
                    let keep = self.acked_streams.get(id).copied().unwrap_or(0);
                    store.truncate(keep as usize);
                }
                if let Some(id) = cur {
                    self.close(now, id, 1006, "");
                }
            }
            Fault::StopReading => self.stuck_reader = true,
            Fault::ResumeReading => self.stuck_reader = false,
        }
    }

    /// The `bufferedAmount` the browser would report for `id`, if held.
    fn buffered(&self, id: SocketId) -> Option<u64> {
        let s = self.sockets.get(&id)?;
        s.held.map(|base| base + s.stuck_bytes)
    }
}

// --- the microphone -----------------------------------------------------------

/// Pushes `every` worth of audio every `every`, positions counting up.
#[derive(Debug, Clone)]
pub struct Mic {
    /// Capturing.
    pub on: bool,
    /// Push period (the capture block).
    pub every: Duration,
    /// Next push.
    pub next_at: Instant,
    /// Samples pushed so far (the next sample's position).
    pub pos: u64,
}

impl Mic {
    fn samples_per_push(&self) -> u64 {
        RATE * self.every.as_millis() as u64 / 1000
    }
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
        let every = Duration::from_millis(u64::from(cfg.chunk_ms));
        Harness {
            session: Session::new(cfg).expect("valid config"),
            now: Instant::from_millis(0),
            server: FakeServer::new(provider),
            mic: Mic {
                on: false,
                every,
                next_at: Instant::from_millis(0),
                pos: 0,
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

    // --- draining ---

    fn drain(&mut self, after_timeout: bool) {
        let mut sent_on = None;
        loop {
            let out = self.session.poll_output();
            match out {
                Output::Timeout(d) => {
                    if let Some(d) = d {
                        if d < self.now {
                            self.fail(&format!(
                                "deadline {} ms is in the past (now {} ms)",
                                d.as_millis(),
                                self.now.as_millis()
                            ));
                        }
                    }
                    self.deadline = d;
                    break;
                }
                Output::Open { id, url, protocols } => {
                    self.note(format!("out open {id:?}"));
                    self.opens.push((self.now, id, protocols.clone()));
                    self.server.on_open(self.now, id, &url, &protocols);
                }
                Output::Send(id, frame) => {
                    let rec = match &frame {
                        Frame::Text(s) => Sent::Text(s.clone()),
                        Frame::Binary(b)
                            if self.server.provider == Provider::Omi && b.len() <= 2 =>
                        {
                            Sent::Other(b.len())
                        }
                        Frame::Binary(b) => {
                            let (first, n) = decode_frame(b);
                            Sent::Audio(first, n)
                        }
                    };
                    self.note(format!("out send {id:?} {rec:?}"));
                    self.unsampled_bytes += frame.len() as u64;
                    self.sent.push((self.now, id, rec));
                    sent_on = Some(id);
                    self.server.on_frame(self.now, id, frame);
                }
                Output::Close { id, code, reason } => {
                    self.note(format!("out close {id:?} {code} {reason}"));
                    self.closes.push((self.now, id, code, reason.clone()));
                    self.server.on_client_close(self.now, id, code, &reason);
                }
                Output::RequestToken(req) => {
                    self.note("out request-token".into());
                    self.token_requests.push(self.now);
                    let n = self.token_requests.len();
                    let answer = self
                        .token_script
                        .pop_front()
                        .unwrap_or_else(|| Ok(format!("tok-{n}")));
                    let delay = self.token_delays.pop_front().unwrap_or(self.token_delay);
                    let at = self.now + delay;
                    self.schedule(at, Scheduled::Client(Deliver::Token(req, answer)));
                }
                Output::Event(e) => self.on_event(e),
                other => self.fail(&format!("unknown output {other:?}")),
            }
        }
        self.absorb();
        self.check_invariants();
        if sent_on.is_some() && !after_timeout {
            self.sample_buffered();
        }
    }

    /// The shell's sample before a timer input: a healthy browser buffer
    /// has drained by then.
    fn sample_before_timer(&mut self) {
        if self.browser_buffer {
            self.unsampled_bytes = 0;
        }
        self.sample_buffered();
    }

    /// Feeds the current socket's `bufferedAmount`, like the browser shell
    /// does after sending and on every timer, when it is (or was) non-zero.
    fn sample_buffered(&mut self) {
        let Some(id) = self.server.current() else {
            return;
        };
        let healthy = std::mem::take(&mut self.unsampled_bytes);
        if self.browser_buffer && self.server.buffered(id).is_none() {
            self.note(format!("in  buffered {id:?} {healthy}"));
            let _ = self
                .session
                .handle_input(self.now, Input::BufferedAmount(id, healthy));
            self.drain(true);
            return;
        }
        let amount = self.server.buffered(id).unwrap_or(0);
        let last = self.last_buffered.get(&id).copied().unwrap_or(0);
        if amount == 0 && last == 0 {
            return;
        }
        self.last_buffered.insert(id, amount);
        self.note(format!("in  buffered {id:?} {amount}"));
        let _ = self
            .session
            .handle_input(self.now, Input::BufferedAmount(id, amount));
        self.drain(true);
    }

    fn on_event(&mut self, e: Event) {
        self.note(format!("event {}", brief_event(&e)));
        if let Event::State(StateChange {
            state, previous, ..
        }) = &e
        {
            if let Some(term) = self.terminal {
                self.fail(&format!(
                    "state changed {previous:?} -> {state:?} after the terminal {term:?}"
                ));
            }
            if state.is_terminal() {
                self.terminal = Some(*state);
            }
        }
        if let Event::Dropped(d) = &e {
            self.dropped_in_events += d.bytes;
        }
        if self.closed_seen && !(self.in_audio && matches!(e, Event::Dropped(_))) {
            self.fail(&format!(
                "{} after `closed`, which must be the last event (only audio pushed later is reported)",
                brief_event(&e)
            ));
        }
        if matches!(e, Event::Closed { .. }) {
            self.closed_seen = true;
        }
        self.events.push((self.now, e));
    }

    fn check_invariants(&mut self) {
        if !self.check_stats {
            return;
        }
        let s = self.session.stats();
        if s.bytes_pushed != s.bytes_sent + s.bytes_queued + s.bytes_dropped {
            self.fail(&format!(
                "conservation: pushed {} != sent {} + queued {} + dropped {}",
                s.bytes_pushed, s.bytes_sent, s.bytes_queued, s.bytes_dropped
            ));
        }
        if s.bytes_dropped != self.dropped_in_events {
            self.fail(&format!(
                "stats.bytes_dropped {} != bytes in dropped events {}",
                s.bytes_dropped, self.dropped_in_events
            ));
        }
        let max = self.session.config().max_bytes;
        if self.session.queued_bytes() > max {
            self.fail(&format!(
                "queue holds {} bytes > maxBytes {max}",
                self.session.queued_bytes()
            ));
        }
    }

    fn note(&mut self, line: String) {
        if self.trace.len() == 60 {
            self.trace.pop_front();
        }
        let at = self.now.as_millis();
        self.trace.push_back(format!("{at:>10} {line}"));
    }

    /// Panics with `msg` and the recent trace.
    pub fn fail(&self, msg: &str) -> ! {
        let mut s = String::new();
        for l in &self.trace {
            let _ = writeln!(s, "  {l}");
        }
        panic!("{msg}\nrecent trace (ms):\n{s}");
    }

    // --- looking at what happened ---

    /// The session's state.
    pub fn state(&self) -> State {
        self.session.state()
    }

    /// The session's counters.
    pub fn stats(&self) -> Stats {
        self.session.stats()
    }

    /// The deadline of the last drain.
    pub fn deadline(&self) -> Option<Instant> {
        self.deadline
    }

    /// Events matching `f`, with their times.
    pub fn events_where<T>(&self, f: impl Fn(&Event) -> Option<T>) -> Vec<(Instant, T)> {
        self.events
            .iter()
            .filter_map(|(at, e)| f(e).map(|v| (*at, v)))
            .collect()
    }

    /// State changes.
    pub fn states(&self) -> Vec<(Instant, StateChange)> {
        self.events_where(|e| match e {
            Event::State(s) => Some(s.clone()),
            _ => None,
        })
    }

    /// Times the session entered `state`.
    pub fn entered(&self, state: State) -> Vec<Instant> {
        self.states()
            .into_iter()
            .filter(|(_, s)| s.state == state)
            .map(|(at, _)| at)
            .collect()
    }

    /// `Open` events: time and connection number.
    pub fn ready_events(&self) -> Vec<(Instant, u32)> {
        self.events_where(|e| match e {
            Event::Open { connection, .. } => Some(*connection),
            _ => None,
        })
    }

    /// `Dropped` events.
    pub fn dropped(&self) -> Vec<(Instant, Dropped)> {
        self.events_where(|e| match e {
            Event::Dropped(d) => Some(d.clone()),
            _ => None,
        })
    }

    /// Bytes dropped for `reason`.
    pub fn dropped_bytes(&self, reason: DropReason) -> u64 {
        self.dropped()
            .iter()
            .filter(|(_, d)| d.reason == reason)
            .map(|(_, d)| d.bytes)
            .sum()
    }

    /// `Error` events: code and fatality.
    pub fn errors(&self) -> Vec<(Instant, ErrorCode, bool)> {
        self.events_where(|e| match e {
            Event::Error { code, fatal, .. } => Some((*code, *fatal)),
            _ => None,
        })
        .into_iter()
        .map(|(at, (c, f))| (at, c, f))
        .collect()
    }

    /// `Transcript` events.
    pub fn transcripts(&self) -> Vec<(Instant, Transcript)> {
        self.events_where(|e| match e {
            Event::Transcript(t) => Some(t.clone()),
            _ => None,
        })
    }

    /// `Reconnecting` events: attempt and delay.
    pub fn reconnecting(&self) -> Vec<(Instant, u32, Duration)> {
        self.events_where(|e| match e {
            Event::Reconnecting { attempt, delay } => Some((*attempt, *delay)),
            _ => None,
        })
        .into_iter()
        .map(|(at, (a, d))| (at, a, d))
        .collect()
    }

    /// The `Closed` event, if any: time, code, reason.
    pub fn closed(&self) -> Option<(Instant, Option<u16>, String)> {
        self.events_where(|e| match e {
            Event::Closed { code, reason } => Some((*code, reason.clone())),
            _ => None,
        })
        .into_iter()
        .map(|(at, (c, r))| (at, c, r))
        .next()
    }

    /// Positions of audio the server received on any socket, in order.
    pub fn server_audio(&self) -> Vec<Received> {
        self.server.received.clone()
    }

    /// Panics unless the server's audio arrived in order: strictly
    /// increasing and non-overlapping on each socket, and across sockets
    /// going back only to resend what the dead socket's server had not
    /// confirmed (at most the `Output`s sent after its last confirmation),
    /// never further back than the first unconfirmed byte.
    pub fn assert_server_audio_in_order(&self) {
        let mut next = 0u64;
        let mut socket = None;
        for r in &self.server.received {
            if socket != Some(r.socket) && socket.is_some() {
                // A new socket may start with a resend of unconfirmed audio:
                // everything from there on must still be contiguous.
                next = next.min(r.first);
            }
            socket = Some(r.socket);
            assert!(
                r.first >= next,
                "server got position {} after {next} on {:?}: duplicate or reordered audio",
                r.first,
                r.socket
            );
            next = r.first + r.samples;
        }
    }

    /// Samples the server received more than once (resends of audio a dead
    /// socket's server had not confirmed).
    pub fn duplicate_samples_received(&self) -> u64 {
        let total: u64 = self.server.received.iter().map(|r| r.samples).sum();
        total - self.unique_samples_received()
    }

    /// Samples pushed by the microphone (or `push_audio`) so far.
    pub fn pushed_samples(&self) -> u64 {
        self.mic.pos
    }

    /// Unique samples the server received.
    pub fn unique_samples_received(&self) -> u64 {
        let mut v: Vec<(u64, u64)> = self
            .server
            .received
            .iter()
            .map(|r| (r.first, r.first + r.samples))
            .collect();
        v.sort_unstable();
        let (mut total, mut end) = (0, 0);
        for (a, b) in v {
            let a = a.max(end);
            if b > a {
                total += b - a;
                end = b;
            }
        }
        total
    }
}

/// The stream position ranges a transcript's text names (`audio A..B`,
/// as the fake server writes them).
pub fn named_ranges(text: &str) -> Vec<(u64, u64)> {
    text.split("audio ")
        .skip(1)
        .filter_map(|r| {
            let r = r.split_whitespace().next()?;
            let (a, b) = r.split_once("..")?;
            Some((a.parse().ok()?, b.parse().ok()?))
        })
        .collect()
}

impl Harness {
    /// Sample ranges covered by the FINAL transcripts the session emitted.
    pub fn final_coverage(&self) -> Vec<(u64, u64)> {
        let mut v: Vec<(u64, u64)> = self
            .transcripts()
            .iter()
            .filter(|(_, t)| t.is_final)
            .flat_map(|(_, t)| named_ranges(&t.text))
            .collect();
        v.sort_unstable();
        let mut out: Vec<(u64, u64)> = Vec::new();
        for (a, b) in v {
            match out.last_mut() {
                Some(last) if a <= last.1 => last.1 = last.1.max(b),
                _ => out.push((a, b)),
            }
        }
        out
    }

    /// Pushed samples that no final transcript covers.
    pub fn uncovered_samples(&self) -> u64 {
        let covered: u64 = self
            .final_coverage()
            .iter()
            .map(|(a, b)| b.min(&self.pushed_samples()).saturating_sub(*a))
            .sum();
        self.pushed_samples() - covered.min(self.pushed_samples())
    }

    /// The user-level promise: every pushed sample is in a final
    /// transcript or in a `dropped` event. Panics with the figures if not.
    pub fn assert_every_sample_final_or_reported(&self, what: &str) {
        let uncovered = self.uncovered_samples() * 2;
        let reported = self.stats().bytes_dropped;
        if uncovered > reported {
            self.fail(&format!(
                "{what}: {} bytes of audio in no final transcript and not reported dropped \
                 (uncovered {uncovered}, reported {reported})",
                uncovered - reported
            ));
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

fn brief_event(e: &Event) -> String {
    match e {
        Event::Transcript(t) => format!("transcript {:?}", t.text),
        other => format!("{other:?}"),
    }
}
