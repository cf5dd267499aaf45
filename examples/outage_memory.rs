//! Memory during a 10-minute outage, at default settings, on the core's
//! virtual clock (`npm run bench` runs it: `cargo run --release --example
//! outage_memory`).
//!
//! One [`Session`] per provider streams 100 ms chunks of 16 kHz audio to a
//! server that confirms everything at once (generic `ack`s; Deepgram finals
//! every second), then the server goes away for 10 minutes: the socket is
//! reset, and every attempt meanwhile fails at once (the browser's close
//! 1006). Printed: the peak of the resend window (`queued_bytes`: unsent
//! plus sent-but-unconfirmed), the peak of `stats().bytesQueued`, what was
//! reported dropped (by reason) against what the outage cost, and the
//! attempts made. One JSON line per provider on stdout.

use resilient_transcriber::core::{
    Config, Credential, Event, Frame, Input, Instant, Output, Provider, Session, SocketId,
};
use std::collections::BTreeMap;

const RATE: u64 = 16_000;
const CHUNK: u64 = 1_600;
const BEFORE_MS: u64 = 10_000;
const OUTAGE_MS: u64 = 600_000;
const AFTER_MS: u64 = 30_000;

struct Sim {
    s: Session,
    provider: Provider,
    now: u64,
    next_wake: Option<u64>,
    socket: Option<SocketId>,
    /// Sockets to open (or fail) at an instant.
    pending_open: Vec<(u64, SocketId)>,
    up: bool,
    /// Audio bytes received on the current socket (Deepgram's clock).
    wire: u64,
    /// Seconds of this socket's audio already finalized (Deepgram).
    finalized: u64,
    stream_bytes: u64,
    peak_window: usize,
    peak_queued: u64,
    dropped: BTreeMap<&'static str, f64>,
    attempts_in_outage: u64,
}

impl Sim {
    fn new(provider: Provider) -> Sim {
        let url = match provider {
            Provider::Deepgram => "ws://server/v1/listen",
            Provider::Omi => "ws://server/v4/web/listen",
            _ => "ws://server/v1/stream",
        };
        let mut cfg = Config::new(provider, url);
        cfg.token = Some(Credential::token("t"));
        Sim {
            s: Session::new(cfg).expect("defaults are valid"),
            provider,
            now: 0,
            next_wake: None,
            socket: None,
            pending_open: Vec::new(),
            up: true,
            wire: 0,
            finalized: 0,
            stream_bytes: 0,
            peak_window: 0,
            peak_queued: 0,
            dropped: BTreeMap::new(),
            attempts_in_outage: 0,
        }
    }

    fn input(&mut self, input: Input<'_>) {
        self.s
            .handle_input(Instant::from_millis(self.now), input)
            .expect("no misuse");
        self.drain();
    }

    fn drain(&mut self) {
        let mut replies: Vec<(SocketId, String)> = Vec::new();
        loop {
            match self.s.poll_output() {
                Output::Open { id, .. } => {
                    self.pending_open.push((self.now + 5, id));
                    if !self.up {
                        self.attempts_in_outage += 1;
                    }
                }
                Output::Send(id, Frame::Binary(b)) if Some(id) == self.socket && b.len() > 2 => {
                    self.wire += b.len() as u64;
                    self.stream_bytes += b.len() as u64;
                    match self.provider {
                        Provider::Deepgram | Provider::Omi => {
                            let secs = self.wire / (RATE * 2);
                            if secs > self.finalized {
                                self.finalized = secs;
                                replies.push((id, final_result(self.provider, secs)));
                            }
                        }
                        _ => replies.push((
                            id,
                            format!(r#"{{"type":"ack","offset":{}}}"#, self.stream_bytes),
                        )),
                    }
                }
                Output::Send(id, Frame::Text(t)) if Some(id) == self.socket => {
                    if self.provider == Provider::Generic && t.contains(r#""type":"start""#) {
                        let offset = json_u64(&t, "offset");
                        self.stream_bytes = offset;
                        replies.push((
                            id,
                            format!(r#"{{"type":"started","stream":"x","offset":{offset}}}"#),
                        ));
                    } else if self.provider == Provider::Omi && t.contains(r#""type":"auth""#) {
                        replies.push((id, r#"{"type":"auth_response","success":true}"#.into()));
                    }
                }
                Output::Send(..) => {}
                Output::Close { id, .. } if Some(id) == self.socket => self.socket = None,
                Output::Close { .. } => {}
                Output::Event(Event::Dropped(d)) => {
                    *self.dropped.entry(d.reason.as_str()).or_default() += d.audio_ms;
                }
                Output::Event(_) | Output::RequestToken(_) => {}
                Output::Timeout(at) => {
                    self.next_wake = at.map(Instant::as_millis);
                    break;
                }
                _ => {}
            }
        }
        self.peak_window = self.peak_window.max(self.s.queued_bytes());
        self.peak_queued = self.peak_queued.max(self.s.stats().bytes_queued);
        for (id, text) in replies {
            if Some(id) == self.socket {
                self.input(Input::SocketText(id, &text));
            }
        }
    }

    /// Runs the clock to `until`, pushing a chunk every 100 ms.
    fn run_to(&mut self, until: u64, next_chunk: &mut u64, pos: &mut u64) {
        while self.now < until {
            let mut t = until.min(*next_chunk);
            if let Some(w) = self.next_wake {
                t = t.min(w.max(self.now));
            }
            if let Some(&(at, _)) = self.pending_open.iter().min_by_key(|p| p.0) {
                t = t.min(at);
            }
            self.now = t;
            if let Some(i) = self.pending_open.iter().position(|p| p.0 <= self.now) {
                let (_, id) = self.pending_open.remove(i);
                if self.up {
                    self.socket = Some(id);
                    self.wire = 0;
                    self.finalized = 0;
                    self.input(Input::SocketOpened(id));
                } else {
                    self.input(Input::SocketClosed {
                        id,
                        code: 1006,
                        reason: "",
                    });
                }
                continue;
            }
            if self.now >= *next_chunk {
                let samples: Vec<i16> = (*pos..*pos + CHUNK).map(|i| i as i16).collect();
                *pos += CHUNK;
                *next_chunk += 100;
                self.input(Input::Audio(&samples));
                continue;
            }
            if self.next_wake.is_some_and(|w| w <= self.now) {
                self.input(Input::Timeout);
            }
        }
    }
}

fn final_result(provider: Provider, secs: u64) -> String {
    match provider {
        Provider::Omi => format!(
            r#"[{{"id":"x","text":"words","speaker":"SPEAKER_00","speaker_id":0,"is_user":false,"person_id":null,"start":{},"end":{secs}}}]"#,
            secs - 1
        ),
        _ => format!(
            r#"{{"type":"Results","channel_index":[0,1],"duration":1.0,"start":{},"is_final":true,"speech_final":false,"from_finalize":false,"channel":{{"alternatives":[{{"transcript":"words","confidence":1.0,"words":[]}}]}}}}"#,
            secs - 1
        ),
    }
}

fn json_u64(text: &str, field: &str) -> u64 {
    let key = format!("\"{field}\":");
    text.split_once(&key)
        .map(|(_, rest)| {
            rest.chars()
                .take_while(char::is_ascii_digit)
                .collect::<String>()
        })
        .and_then(|d| d.parse().ok())
        .unwrap_or(0)
}

fn main() {
    for provider in [Provider::Deepgram, Provider::Omi, Provider::Generic] {
        let mut sim = Sim::new(provider);
        let (mut next_chunk, mut pos) = (0u64, 0u64);
        sim.input(Input::Connect);
        sim.run_to(BEFORE_MS, &mut next_chunk, &mut pos);
        let before = sim.s.stats();
        // The outage: the socket is reset, every attempt fails.
        sim.up = false;
        if let Some(id) = sim.socket.take() {
            sim.input(Input::SocketClosed {
                id,
                code: 1006,
                reason: "",
            });
        }
        sim.peak_window = 0;
        sim.peak_queued = 0;
        sim.run_to(BEFORE_MS + OUTAGE_MS, &mut next_chunk, &mut pos);
        let (peak_window, peak_queued) = (sim.peak_window, sim.peak_queued);
        let dropped_in_outage: f64 = sim.dropped.values().sum();
        sim.up = true;
        sim.run_to(BEFORE_MS + OUTAGE_MS + AFTER_MS, &mut next_chunk, &mut pos);
        let st = sim.s.stats();
        let dropped: Vec<String> = sim
            .dropped
            .iter()
            .map(|(k, v)| format!("\"{k}\":{v:.0}"))
            .collect();
        println!(
            "{{\"provider\":\"{}\",\"outage_ms\":{OUTAGE_MS},\"peak_window_bytes\":{peak_window},\"peak_bytes_queued\":{peak_queued},\
\"max_bytes\":960000,\"dropped_during_outage_ms\":{dropped_in_outage:.0},\"dropped_ms\":{{{}}},\"attempts_during_outage\":{},\
\"pushed_ms\":{},\"reconnects\":{},\"queued_after_ms\":{:.0},\"bytes_acked_before\":{}}}",
            provider.as_str(),
            dropped.join(","),
            sim.attempts_in_outage,
            st.bytes_pushed / 32,
            st.reconnects,
            st.audio_ms_queued,
            before.bytes_acked,
        );
    }
}
