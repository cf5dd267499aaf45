#![cfg(not(target_arch = "wasm32"))]
//! Random input sequences against the session, for every provider, with the
//! invariants that must hold after every single step, whatever the order of
//! events: audio of random sizes, opens and closes (with every interesting
//! code, on current, old and unknown sockets), resets, server messages
//! (valid, malformed, acks of random offsets), buffer samples, lifecycle
//! events, tokens, timeouts, small and huge time jumps, closes with and
//! without flush.
//!
//! Invariants, checked after every input and its drain:
//! - `bytes_pushed == bytes_sent + bytes_queued + bytes_dropped`;
//! - the bytes of the `dropped` events sum to `stats.bytes_dropped`;
//! - audio first sends are strictly increasing in stream position (over all
//!   sockets), and their bytes sum to `stats.bytes_sent`; anything sent
//!   again is an earlier chunk, only with the resumable protocol, and sums
//!   to `stats.bytes_resent`; on each socket positions strictly increase;
//! - `queued_bytes() <= buffer.maxBytes`;
//! - `poll_output` ends with `Timeout`, never in the past, and a timeout
//!   fed at the deadline makes progress (no wake-up loop);
//! - once `closed`/`failed`, the state never changes, and `closed` is the
//!   last event except for audio pushed later, reported dropped.
//!
//! At the end the session is closed: every pushed byte was sent or
//! reported dropped, and `bytes_acked <= bytes_sent`.

use std::collections::HashMap;
use std::time::Duration;

use proptest::prelude::*;
use resilient_transcriber::core::{
    Config, Event, Frame, Input, Instant, Output, Provider, Session, SocketId, State, TokenRequest,
};

const CLOSE_CODES: [u16; 12] = [
    1000, 1001, 1005, 1006, 1011, 1012, 4000, 4999, 1003, 1008, 4001, 4400,
];
const REASONS: [&str; 4] = ["", "NET-0001", "DATA-0000", "finished"];

#[derive(Debug, Clone)]
enum Op {
    /// Push this many (even) samples.
    Audio(u16),
    /// Advance the clock without any input.
    Advance(u32),
    /// A huge jump (sleep, clock change) then a timeout.
    Jump(u64),
    /// Advance to the deadline and feed `Timeout`.
    Timeout,
    Opened(u8),
    Text(u8, u8, u16),
    Binary(u8),
    Closed(u8, u8, u8),
    Error(u8),
    Buffered(u8, u32),
    Online,
    Offline,
    Hidden,
    Resumed,
    Token(bool),
    Connect,
    Close(bool, Option<u32>),
    /// The server side of a successful attempt: the pending token (if
    /// requested), the open of the latest socket, Omi's auth success.
    Establish,
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        8 => (1u16..2_400).prop_map(|n| Op::Audio(n * 2)),
        4 => (0u32..3_000).prop_map(Op::Advance),
        2 => (3_000u32..70_000).prop_map(Op::Advance),
        1 => (1u64..1 << 40).prop_map(Op::Jump),
        8 => Just(Op::Timeout),
        10 => Just(Op::Establish),
        4 => (0u8..3).prop_map(Op::Opened),
        6 => (0u8..3, any::<u8>(), any::<u16>()).prop_map(|(w, k, x)| Op::Text(w, k, x)),
        1 => (0u8..3).prop_map(Op::Binary),
        // Mostly retryable codes (the first eight), sometimes fatal ones.
        3 => (0u8..3, prop_oneof![4 => 0u8..8, 1 => 0u8..12], 0u8..4)
            .prop_map(|(w, c, r)| Op::Closed(w, c, r)),
        1 => (0u8..3).prop_map(Op::Error),
        2 => (0u8..3, prop_oneof![Just(0u32), 0u32..200_000]).prop_map(|(w, n)| Op::Buffered(w, n)),
        1 => Just(Op::Online),
        1 => Just(Op::Offline),
        1 => Just(Op::Hidden),
        1 => Just(Op::Resumed),
        2 => any::<bool>().prop_map(Op::Token),
        1 => Just(Op::Connect),
        1 => (any::<bool>(), proptest::option::of(0u32..20_000)).prop_map(|(f, t)| Op::Close(f, t)),
    ]
}

#[derive(Debug, Clone)]
struct Setup {
    provider: Provider,
    max_chunks: usize,
    ttl_ms: u64,
    jitter: f64,
    token_callback: bool,
    max_attempts: Option<u32>,
    seed: u64,
}

fn setup() -> impl Strategy<Value = Setup> {
    (
        prop_oneof![
            Just(Provider::Deepgram),
            Just(Provider::Omi),
            Just(Provider::Generic)
        ],
        1usize..40,
        1u64..60_000,
        0.0f64..=1.0,
        any::<bool>(),
        prop_oneof![3 => Just(None), 1 => (1u32..6).prop_map(Some)],
        any::<u64>(),
    )
        .prop_map(
            |(provider, max_chunks, ttl_ms, jitter, token_callback, max_attempts, seed)| Setup {
                provider,
                max_chunks,
                ttl_ms,
                jitter,
                token_callback,
                max_attempts,
                seed,
            },
        )
}

fn sample_at(i: u64) -> i16 {
    let v = if i % 2 == 0 { i >> 16 } else { i & 0xFFFF };
    v as u16 as i16
}

/// Position of the first sample of an audio frame (frames start at chunk
/// boundaries, which are even positions).
fn decode(b: &[u8]) -> (u64, u64) {
    let s: Vec<u16> = b
        .chunks_exact(2)
        .map(|p| u16::from_le_bytes([p[0], p[1]]))
        .collect();
    assert!(
        s.len() >= 2 && b.len() % 2 == 0,
        "audio frame of {} bytes",
        b.len()
    );
    let first = ((u64::from(s[0]) << 16) | u64::from(s[1])) - 1;
    for (k, &v) in s.iter().enumerate() {
        assert_eq!(
            v,
            sample_at(first + k as u64) as u16,
            "corrupt frame at {first}+{k}"
        );
    }
    (first, s.len() as u64)
}

struct Driver {
    s: Session,
    provider: Provider,
    now: Instant,
    deadline: Option<Instant>,
    opens: Vec<SocketId>,
    /// Last audio position sent, per socket.
    per_socket_end: HashMap<SocketId, u64>,
    /// Bytes (offset) sent on each socket: what a server could ack.
    socket_bytes_end: HashMap<SocketId, u64>,
    pushed: u64,
    max_end: u64,
    first_sent_bytes: u64,
    resent_bytes: u64,
    dropped_event_bytes: u64,
    terminal: Option<State>,
    closed_seen: bool,
    token_requested: Option<TokenRequest>,
    max_bytes: usize,
    log: Vec<String>,
}

impl Driver {
    fn new(setup: &Setup) -> Driver {
        let url = match setup.provider {
            Provider::Deepgram => "wss://h/v1/listen",
            Provider::Omi => "wss://h/v4/web/listen",
            _ => "wss://h/v1/stream",
        };
        let mut cfg = Config::new(setup.provider, url);
        cfg.max_bytes = setup.max_chunks * cfg.chunk_bytes();
        cfg.ttl = Duration::from_millis(setup.ttl_ms);
        cfg.reconnect.jitter = setup.jitter;
        cfg.reconnect.max_attempts = setup.max_attempts;
        cfg.token_callback = setup.token_callback;
        cfg.seed = setup.seed;
        if setup.provider == Provider::Omi && !setup.token_callback {
            cfg.token = Some("k".into());
        }
        let max_bytes = cfg.max_bytes;
        Driver {
            s: Session::new(cfg).expect("valid"),
            provider: setup.provider,
            now: Instant::from_millis(1_000),
            deadline: None,
            opens: Vec::new(),
            per_socket_end: HashMap::new(),
            socket_bytes_end: HashMap::new(),
            pushed: 0,
            max_end: 0,
            first_sent_bytes: 0,
            resent_bytes: 0,
            dropped_event_bytes: 0,
            terminal: None,
            closed_seen: false,
            token_requested: None,
            max_bytes,
            log: Vec::new(),
        }
    }

    fn which(&self, w: u8) -> SocketId {
        match (w, self.opens.len()) {
            (_, 0) => SocketId(777),
            (0, n) => self.opens[n - 1],
            (1, n) if n >= 2 => self.opens[n - 2],
            _ => SocketId(777),
        }
    }

    fn feed(&mut self, input: Input<'_>) -> Result<(), TestCaseError> {
        let audio = matches!(input, Input::Audio(_));
        self.log
            .push(format!("{} {:?}", self.now.as_millis(), brief(&input)));
        let _ = self.s.handle_input(self.now, input);
        self.drain(audio)
    }

    fn drain(&mut self, audio: bool) -> Result<(), TestCaseError> {
        for _ in 0..100_000 {
            match self.s.poll_output() {
                Output::Timeout(d) => {
                    if let Some(d) = d {
                        prop_assert!(d >= self.now, "deadline {d:?} before now {:?}", self.now);
                    }
                    self.deadline = d;
                    return self.check();
                }
                Output::Open { id, .. } => {
                    prop_assert!(!self.opens.contains(&id), "socket id reused");
                    self.opens.push(id);
                }
                Output::Send(id, Frame::Binary(b)) => {
                    if self.provider == Provider::Omi && b.len() <= 2 {
                        continue; // keepalive
                    }
                    let (first, n) = decode(&b);
                    let last = self.per_socket_end.insert(id, first + n);
                    if let Some(last) = last {
                        prop_assert!(first >= last, "socket {id:?}: {first} after {last}");
                    }
                    self.socket_bytes_end.insert(id, (first + n) * 2);
                    if first >= self.max_end {
                        self.first_sent_bytes += n * 2;
                        self.max_end = first + n;
                    } else {
                        // A resend: unconfirmed audio of a socket that died,
                        // so never on the socket that first carried it.
                        prop_assert!(
                            last.is_none() || self.opens.len() > 1,
                            "resend on the only socket"
                        );
                        prop_assert!(first + n <= self.max_end);
                        self.resent_bytes += n * 2;
                    }
                }
                Output::RequestToken(req) => self.token_requested = Some(req),
                Output::Send(..) | Output::Close { .. } => {}
                Output::Event(e) => {
                    if let Event::State(sc) = &e {
                        prop_assert!(self.terminal.is_none(), "{sc:?} after terminal");
                        if sc.state.is_terminal() {
                            self.terminal = Some(sc.state);
                        }
                    }
                    if let Event::Dropped(d) = &e {
                        self.dropped_event_bytes += d.bytes;
                    }
                    prop_assert!(
                        !self.closed_seen || (audio && matches!(e, Event::Dropped(_))),
                        "{e:?} after closed"
                    );
                    if matches!(e, Event::Closed { .. }) {
                        self.closed_seen = true;
                    }
                }
                other => prop_assert!(false, "unknown output {other:?}"),
            }
        }
        prop_assert!(false, "poll_output never returned Timeout");
        unreachable!()
    }

    fn check(&self) -> Result<(), TestCaseError> {
        let st = self.s.stats();
        prop_assert_eq!(st.bytes_pushed, self.pushed * 2);
        prop_assert_eq!(
            st.bytes_pushed,
            st.bytes_sent + st.bytes_queued + st.bytes_dropped,
            "conservation: {:?}",
            st
        );
        prop_assert_eq!(st.bytes_dropped, self.dropped_event_bytes);
        // Sent-but-unconfirmed audio of a lost connection goes back to
        // "queued" (or into a drop report), so `sent` counts unique bytes
        // that reached the wire and were not taken back.
        prop_assert!(st.bytes_sent <= self.first_sent_bytes);
        prop_assert_eq!(st.bytes_resent, self.resent_bytes);
        prop_assert!(st.bytes_acked <= self.first_sent_bytes);
        prop_assert!(self.s.queued_bytes() <= self.max_bytes);
        if let Some(t) = self.terminal {
            prop_assert_eq!(self.s.state(), t);
        }
        Ok(())
    }

    fn timeout(&mut self) -> Result<(), TestCaseError> {
        // Fire due deadlines; a deadline still at `now` after a few rounds
        // is a wake-up loop.
        for round in 0..4 {
            let Some(d) = self.deadline else {
                return Ok(());
            };
            if round > 0 && d > self.now {
                return Ok(());
            }
            self.now = self.now.max(d);
            self.feed(Input::Timeout)?;
        }
        prop_assert!(
            self.deadline.map_or(true, |d| d > self.now),
            "deadline stuck at now {:?}",
            self.now
        );
        Ok(())
    }

    fn text(&self, id: SocketId, kind: u8, x: u16) -> String {
        let sent = self.socket_bytes_end.get(&id).copied().unwrap_or(0);
        let off = if sent == 0 {
            0
        } else {
            sent * u64::from(x) / 65_535
        };
        let start = f64::from(x) / 100.0;
        match self.provider {
            Provider::Deepgram => match kind % 6 {
                0 | 1 => format!(
                    r#"{{"type":"Results","duration":1.0,"start":{start},"is_final":{},"channel":{{"alternatives":[{{"transcript":"w"}}]}}}}"#,
                    kind % 2 == 0
                ),
                2 => r#"{"type":"Metadata"}"#.into(),
                3 => r#"{"type":"Error","description":"x"}"#.into(),
                4 => r#"{"type":"Results"}"#.into(),
                _ => "\u{0}garbage".into(),
            },
            Provider::Omi => match kind % 16 {
                0 | 1 => r#"{"type":"auth_response","success":true}"#.into(),
                2 => r#"{"type":"auth_response","success":false}"#.into(),
                7..=12 => "ping".into(),
                3 => "ping".into(),
                4 => format!(r#"[{{"text":"w","start":{start},"end":{start}}}]"#),
                5 => r#"{"type":"service_status"}"#.into(),
                _ => "[1,".into(),
            },
            _ => match kind % 8 {
                0..=2 => format!(r#"{{"type":"ack","offset":{off}}}"#),
                3 => r#"{"type":"started","stream":"s","offset":0}"#.into(),
                4 => format!(r#"{{"type":"finished","offset":{off}}}"#),
                5 => format!(
                    r#"{{"type":"transcript","text":"w","is_final":true,"start":{start},"end":{start}}}"#
                ),
                6 => "ping".into(),
                _ => r#"{"type":"error","message":"x"}"#.into(),
            },
        }
    }

    fn apply(&mut self, op: &Op) -> Result<(), TestCaseError> {
        match *op {
            Op::Audio(n) => {
                let pcm: Vec<i16> = (self.pushed..self.pushed + u64::from(n))
                    .map(sample_at)
                    .collect();
                self.pushed += u64::from(n);
                self.feed(Input::Audio(&pcm))?;
            }
            Op::Advance(ms) => {
                // The caller's timer would have fired on the way.
                let target = self.now + Duration::from_millis(u64::from(ms));
                while let Some(d) = self.deadline.filter(|d| *d <= target) {
                    self.now = self.now.max(d);
                    self.feed(Input::Timeout)?;
                    if self.deadline == Some(d) && d == self.now {
                        self.timeout()?;
                    }
                }
                self.now = target;
            }
            Op::Jump(ms) => {
                self.now = self.now + Duration::from_millis(ms);
                self.feed(Input::Timeout)?;
            }
            Op::Timeout => self.timeout()?,
            Op::Opened(w) => {
                let id = self.which(w);
                self.feed(Input::SocketOpened(id))?;
            }
            Op::Text(w, k, x) => {
                let id = self.which(w);
                let t = self.text(id, k, x);
                self.feed(Input::SocketText(id, &t))?;
            }
            Op::Binary(w) => {
                let id = self.which(w);
                self.feed(Input::SocketBinary(id, &[1, 2, 3]))?;
            }
            Op::Closed(w, c, r) => {
                let id = self.which(w);
                self.feed(Input::SocketClosed {
                    id,
                    code: CLOSE_CODES[usize::from(c)],
                    reason: REASONS[usize::from(r)],
                })?;
            }
            Op::Error(w) => {
                let id = self.which(w);
                self.feed(Input::SocketError(id))?;
            }
            Op::Buffered(w, n) => {
                let id = self.which(w);
                self.feed(Input::BufferedAmount(id, u64::from(n)))?;
            }
            Op::Online => self.feed(Input::Online)?,
            Op::Offline => self.feed(Input::Offline)?,
            Op::Hidden => self.feed(Input::PageHidden)?,
            Op::Resumed => self.feed(Input::PageResumed)?,
            Op::Token(ok) => {
                let t = if ok {
                    Ok("tok".into())
                } else {
                    Err("no".into())
                };
                // Answer the request in flight, or (a late answer) an
                // older id, which the session must ignore.
                let req = self.token_requested.take().unwrap_or(TokenRequest(0));
                self.feed(Input::Token(req, t))?;
            }
            Op::Establish => {
                if self.token_requested.is_some() {
                    self.apply(&Op::Token(true))?;
                }
                let id = self.which(0);
                self.feed(Input::SocketOpened(id))?;
                if self.provider == Provider::Omi {
                    self.feed(Input::SocketText(
                        id,
                        r#"{"type":"auth_response","success":true}"#,
                    ))?;
                }
            }
            Op::Connect => self.feed(Input::Connect)?,
            Op::Close(flush, timeout) => self.feed(Input::Close {
                flush,
                timeout: timeout.map(|t| Duration::from_millis(u64::from(t))),
            })?,
        }
        Ok(())
    }
}

fn brief(i: &Input<'_>) -> String {
    match i {
        Input::Audio(s) => format!("Audio({})", s.len()),
        other => format!("{other:?}"),
    }
}

fn run(setup: &Setup, ops: &[Op]) -> Result<(), TestCaseError> {
    let mut d = Driver::new(setup);
    d.feed(Input::Connect)?;
    for op in ops {
        d.apply(op)?;
    }
    // End: close without flush; everything is now sent or dropped.
    d.feed(Input::Close {
        flush: false,
        timeout: None,
    })?;
    prop_assert!(
        d.s.state().is_terminal(),
        "close(flush: false) is immediate"
    );
    let st = d.s.stats();
    if std::env::var("PROP_COVERAGE").is_ok() {
        eprintln!(
            "COV {:?} sent={} resent={} acked={} dropped={} reconnects={} attempts={} closing={}",
            setup.provider,
            st.bytes_sent > 0,
            st.bytes_resent > 0,
            st.bytes_acked > 0,
            st.bytes_dropped > 0,
            st.reconnects,
            st.attempts,
            d.log.iter().any(|l| l.contains("flush: true"))
        );
    }
    prop_assert_eq!(st.bytes_queued, 0);
    prop_assert_eq!(st.bytes_pushed, st.bytes_sent + st.bytes_dropped);
    prop_assert!(st.bytes_acked <= st.bytes_sent + st.bytes_resent);
    prop_assert_eq!(d.s.queued_bytes(), 0);
    prop_assert_eq!(d.deadline, None, "no timer after the end");
    // Terminal stays terminal.
    d.apply(&Op::Connect)?;
    d.apply(&Op::Audio(100))?;
    d.apply(&Op::Opened(0))?;
    d.apply(&Op::Timeout)?;
    prop_assert!(d.s.state().is_terminal());
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 400, max_shrink_iters: 2_000, ..ProptestConfig::default() })]

    /// Any sequence of inputs keeps every invariant after every step.
    #[test]
    fn session_invariants_hold_for_any_input_sequence(
        setup in setup(),
        ops in proptest::collection::vec(op(), 1..120),
    ) {
        run(&setup, &ops)?;
    }
}
