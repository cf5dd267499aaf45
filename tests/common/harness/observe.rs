//! Looking at what happened: the session's events by kind, the audio the
//! server received, and which pushed samples a final transcript covers.

use std::time::Duration;

use resilient_transcriber::core::{
    DropReason, Dropped, ErrorCode, Event, Instant, State, StateChange, Stats, Transcript,
};

use super::Harness;
use crate::common::audio::named_ranges;
use crate::common::server::Received;

impl Harness {
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
